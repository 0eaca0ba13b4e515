#!/usr/bin/env node
// Greedy generation with llama.cpp (npm node-llama-cpp, prebuilt CPU build), the peer of
// `m64run -p TEXT -n N --temp 0 --json`.
//
//   node greedy.mjs --model M.gguf --prompt TEXT [-n N] [--threads T] [--ctx C]
//        [--repeat-penalty F] [--repeat-last-n N] [--presence-penalty F] [--frequency-penalty F]
//
// The penalties are llama.cpp's own sampler (llama_sampler_init_penalties, before greedy),
// fed the last N tokens of the context (prompt and output) as llama-cli feeds it.
//
// Prints one JSON line on stdout:
//   {"prompt_tokens":[...],"tokens":[...],"text":"...","prefill_tok_s":..,"decode_tok_s":..,
//    "threads":T,"load_s":..,"llama_cpp":"..."}
// The prompt is BOS (when the model's vocabulary asks for it, as llama.cpp's CLI does) followed
// by the tokenized text, special-token text not parsed. Generation stops after N tokens or at an
// end-of-generation token (not reported), like m64run.
//   prefill_tok_s = prompt tokens / (time from the start of evaluation to the first generated token)
//   decode_tok_s  = (generated tokens - 1) / (time from the first to the last generated token)
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import {readFileSync} from "node:fs";
import {fileURLToPath} from "node:url";
import path from "node:path";

function usage(msg) {
  if (msg) process.stderr.write(`greedy.mjs: ${msg}\n`);
  process.stderr.write("usage: node greedy.mjs --model M.gguf --prompt TEXT [-n N] [--threads T] [--ctx C]\n");
  process.exit(2);
}

const args = {model: null, prompt: "", n: 64, threads: 1, ctx: 0, repeat: 1, lastN: 64, presence: 0, frequency: 0};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const val = () => {
    if (i + 1 >= argv.length) usage(`${a} needs a value`);
    return argv[++i];
  };
  const num = (v) => {
    if (!/^-?\d+(\.\d+)?$/.test(v)) usage(`${a}: not a number: ${v}`);
    return Number(v);
  };
  const int = (v) => {
    if (!/^\d+$/.test(v)) usage(`${a}: not a non-negative integer: ${v}`);
    return Number(v);
  };
  switch (a) {
    case "--model": case "-m": args.model = val(); break;
    case "--prompt": case "-p": args.prompt = val(); break;
    case "-n": case "--n-predict": args.n = int(val()); break;
    case "--threads": case "-t": args.threads = int(val()); break;
    case "--ctx": case "-c": args.ctx = int(val()); break;
    case "--repeat-penalty": args.repeat = num(val()); break;
    case "--repeat-last-n": args.lastN = int(val()); break;
    case "--presence-penalty": args.presence = num(val()); break;
    case "--frequency-penalty": args.frequency = num(val()); break;
    case "-h": case "--help": usage(); break;
    default: usage(`unknown argument: ${a}`);
  }
}
if (!args.model) usage("--model is required");
if (args.threads < 1) usage("--threads must be at least 1");

const t_load0 = performance.now();
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: args.threads});
const model = await llama.loadModel({modelPath: args.model});

const promptTokens = [];
if (model.tokens.shouldPrependBosToken && model.tokens.bos != null) promptTokens.push(model.tokens.bos);
promptTokens.push(...model.tokenize(args.prompt, false));
if (promptTokens.length === 0) usage("empty prompt and the model adds no BOS token");

// default context as m64run's: the model's training context, at most 4096
const trainCtx = model.trainContextSize || 4096;
const contextSize = args.ctx > 0 ? args.ctx : Math.min(trainCtx, 4096);
if (promptTokens.length >= contextSize)
  usage(`prompt of ${promptTokens.length} tokens does not fit the context of ${contextSize}`);
const nPredict = Math.min(args.n, contextSize - promptTokens.length);

const context = await model.createContext({contextSize, threads: args.threads});
const sequence = context.getSequence();
const load_s = (performance.now() - t_load0) / 1000;

const tokens = [];
let tFirst = 0, tLast = 0;
const t0 = performance.now();
if (nPredict > 0) {
  const penal = args.lastN > 0 && (args.repeat !== 1 || args.presence !== 0 || args.frequency !== 0);
  const repeatPenalty = !penal ? undefined : {
    punishTokens: () => promptTokens.concat(tokens).slice(-args.lastN),
    maxPunishTokens: args.lastN, penalty: args.repeat,
    presencePenalty: args.presence, frequencyPenalty: args.frequency,
  };
  for await (const tok of sequence.evaluate(promptTokens, {temperature: 0, repeatPenalty})) {
    const t = performance.now();
    if (tokens.length === 0) tFirst = t;
    tLast = t;
    tokens.push(tok);
    if (tokens.length >= nPredict) break;
  }
}

const prefill_tok_s = tokens.length ? promptTokens.length / ((tFirst - t0) / 1000) : 0;
const decode_tok_s = tokens.length > 1 ? (tokens.length - 1) / ((tLast - tFirst) / 1000) : 0;
let version = "";
try {
  const here = path.dirname(fileURLToPath(import.meta.url));
  version = JSON.parse(readFileSync(path.join(here, "node_modules/node-llama-cpp/package.json"), "utf8")).version;
} catch { /* informational only */ }

const r3 = (x) => Math.round(x * 1000) / 1000;
process.stdout.write(JSON.stringify({
  prompt_tokens: promptTokens,
  tokens,
  text: model.detokenize(tokens),
  prefill_tok_s: r3(prefill_tok_s),
  decode_tok_s: r3(decode_tok_s),
  threads: args.threads,
  context: contextSize,
  load_s: r3(load_s),
  node_llama_cpp: version,
}) + "\n");

await context.dispose();
await model.dispose();
await llama.dispose();

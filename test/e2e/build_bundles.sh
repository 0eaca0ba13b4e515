#!/usr/bin/env bash
# ctest fixture: compiles the bundles the end-to-end tests run, fresh on every ctest run,
# through the real m64c command line. Real models come from ../shared/models when present.
set -euo pipefail
bin="$1" shared="$2" out="$3"
mkdir -p "$out"
rm -f "$out"/*.m64 "$out"/*.gguf
m64c="$bin/cmd/m64c" synth="$bin/test/support/m64-synth"

if [ -d "$shared" ]; then
  "$m64c" build -q "$shared/stories260K.gguf" -o "$out/stories260K.m64"
  "$m64c" build -q "$shared/llama-2-tiny-random.gguf" -o "$out/llama-2-tiny-random.m64"
  "$m64c" build -q "$shared/llama3-bpe-tiny.gguf" -o "$out/llama3-bpe-tiny.m64"
else
  echo "build_bundles: $shared absent; real-model bundles skipped"
fi
# Synthetic models, one per supported quant type, plus GQA and tied-output variants.
# Types with 32-element blocks on the tiny shape (dim 64).
for t in F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 IQ4_NL; do
  "$synth" --shape tiny --type "$t" --seed 11 -o "$out/synth-$t.gguf"
  "$m64c" build -q "$out/synth-$t.gguf" -o "$out/synth-$t.m64"
done
# 256-element block types (K-quants, IQ4_XS) on the small shape (dim 256), and two of
# llama.cpp's file-type mixes over 8 layers (Q4_K with Q6_K where llama.cpp puts it; Q2_K).
for t in Q2_K Q3_K Q4_K Q5_K Q6_K IQ4_XS; do
  "$synth" --shape small --type "$t" --seed 11 -o "$out/synth-$t.gguf"
  "$m64c" build -q "$out/synth-$t.gguf" -o "$out/synth-$t.m64"
done
for m in q4_k_m q2_k; do
  "$synth" --shape small --layers 8 --mix "$m" --seed 11 -o "$out/synth-$m.gguf"
  "$m64c" build -q "$out/synth-$m.gguf" -o "$out/synth-$m.m64"
done
# Matrices above the module's 256 KiB threshold for splitting a matvec across threads.
for t in F32 Q4_K; do
  "$synth" --shape small --dim 512 --ffn 1536 --type "$t" --seed 14 -o "$out/synth-mid-$t.gguf"
  "$m64c" build -q "$out/synth-mid-$t.gguf" -o "$out/synth-mid-$t.m64"
done
# A SentencePiece vocabulary without the bare "▁" token: a space is then 3 byte tokens.
"$synth" --shape tiny --type F32 --seed 19 --vocab-kind spm-nospace -o "$out/synth-nospace.gguf"
"$m64c" build -q "$out/synth-nospace.gguf" -o "$out/synth-nospace.m64"
# A byte-level BPE vocabulary (gpt2 model, llama-bpe pre-tokenizer).
"$synth" --shape tiny --type F32 --seed 15 --vocab-kind bpe -o "$out/synth-bpe.gguf"
"$m64c" build -q "$out/synth-bpe.gguf" -o "$out/synth-bpe.m64"
"$synth" --shape tiny --type Q8_0 --seed 12 --tied -o "$out/synth-tied.gguf"
"$m64c" build -q "$out/synth-tied.gguf" -o "$out/synth-tied.m64"
# A K-quant output tied to token_embd: that matrix stays in rows, the others are row pairs.
"$synth" --shape small --type Q4_K --seed 18 --tied -o "$out/synth-tied-Q4_K.gguf"
"$m64c" build -q "$out/synth-tied-Q4_K.gguf" -o "$out/synth-tied-Q4_K.m64"
"$synth" --shape tiny --layers 8 --type F32 --seed 13 -o "$out/synth-8layer.gguf"
"$m64c" build -q "$out/synth-8layer.gguf" -o "$out/synth-8layer.m64"
# Other members of the family: qwen2 (q/k/v biases, neox RoPE; tied too), and Llama 3.1's
# RoPE frequency divisors (rope_freqs.weight).
"$synth" --shape tiny --arch qwen2 --type F32 --seed 15 -o "$out/synth-qwen2.gguf"
"$m64c" build -q "$out/synth-qwen2.gguf" -o "$out/synth-qwen2.m64"
"$synth" --shape tiny --arch qwen2 --type F16 --tied --seed 16 -o "$out/synth-qwen2-tied.gguf"
"$m64c" build -q "$out/synth-qwen2-tied.gguf" -o "$out/synth-qwen2-tied.m64"
"$synth" --shape tiny --type F32 --rope-freqs --seed 17 -o "$out/synth-ropefreqs.gguf"
"$m64c" build -q "$out/synth-ropefreqs.gguf" -o "$out/synth-ropefreqs.m64"
# qwen3: per-head q/k RMSNorm, neox RoPE, and a head size of its own (q is 2x dim wide
# here, as in Qwen3-0.6B); in F32 and in K-quants (the small shape, 128-wide heads).
"$synth" --shape tiny --arch qwen3 --head-dim 32 --type F32 --seed 21 -o "$out/synth-qwen3.gguf"
"$m64c" build -q "$out/synth-qwen3.gguf" -o "$out/synth-qwen3.m64"
"$synth" --shape small --arch qwen3 --head-dim 128 --tied --mix q4_k_m --seed 22 -o "$out/synth-qwen3-q4_k_m.gguf"
"$m64c" build -q "$out/synth-qwen3-q4_k_m.gguf" -o "$out/synth-qwen3-q4_k_m.m64"
# phi3: q, k, v rows fused in attn_qkv and gate, up rows in ffn_up (the planner splits
# them into row runs), neox RoPE; F32, Q8_0 tied, and K-quants (row pairs of each run).
"$synth" --shape tiny --arch phi3 --type F32 --seed 23 -o "$out/synth-phi3.gguf"
"$m64c" build -q "$out/synth-phi3.gguf" -o "$out/synth-phi3.m64"
"$synth" --shape tiny --arch phi3 --type Q8_0 --tied --seed 26 -o "$out/synth-phi3-tied-Q8_0.gguf"
"$m64c" build -q "$out/synth-phi3-tied-Q8_0.gguf" -o "$out/synth-phi3-tied-Q8_0.m64"
"$synth" --shape small --arch phi3 --type Q4_K --seed 25 -o "$out/synth-phi3-Q4_K.gguf"
"$m64c" build -q "$out/synth-phi3-Q4_K.gguf" -o "$out/synth-phi3-Q4_K.m64"
# and with q, k, v as separate tensors, which llama.cpp also takes for phi3
"$synth" --shape tiny --arch phi3 --qkv-apart --type F32 --seed 27 -o "$out/synth-phi3-apart.gguf"
"$m64c" build -q "$out/synth-phi3-apart.gguf" -o "$out/synth-phi3-apart.m64"
# gemma3: embedding scale, q/k and post norms, GELU, q scale, and sliding-window layers
# (window 8, every 2nd layer global here, so 3 layers hold both kinds and the window
# matters from position 8 on) with RoPE base 10000 against the global layers' 1e6; in F32
# and in a K-quant mix with a tied output (4 layers, 128-wide heads).
"$synth" --shape tiny --arch gemma3 --head-dim 32 --layers 3 --sliding-window 8 --swa-period 2 \
  --rope-base 1000000 --type F32 --seed 23 -o "$out/synth-gemma3.gguf"
"$m64c" build -q "$out/synth-gemma3.gguf" -o "$out/synth-gemma3.m64"
"$synth" --shape small --arch gemma3 --head-dim 128 --layers 4 --sliding-window 8 --swa-period 2 \
  --rope-base 1000000 --tied --mix q4_k_m --seed 24 -o "$out/synth-gemma3-q4_k_m.gguf"
"$m64c" build -q "$out/synth-gemma3-q4_k_m.gguf" -o "$out/synth-gemma3-q4_k_m.m64"
# and with linear rope scaling (factor 8, as Gemma 3 4B and larger), on the global layer only
"$synth" --shape tiny --arch gemma3 --head-dim 32 --layers 3 --sliding-window 8 --swa-period 2 \
  --rope-base 1000000 --rope-scaling 8 --type F32 --seed 23 -o "$out/synth-gemma3-ropescale.gguf"
"$m64c" build -q "$out/synth-gemma3-ropescale.gguf" -o "$out/synth-gemma3-ropescale.m64"
# gemma2: as gemma3 without q/k norms, every 2nd layer global, the output tied to the
# embeddings (llama.cpp loads no output.weight), and soft-capped attention
# scores and logits (caps 2 and 3 here, so that they bend these small models' values).
"$synth" --shape tiny --arch gemma2 --head-dim 32 --layers 3 --sliding-window 8 --attn-softcap 2 \
  --final-softcap 3 --tied --type F32 --seed 25 -o "$out/synth-gemma2.gguf"
"$m64c" build -q "$out/synth-gemma2.gguf" -o "$out/synth-gemma2.m64"
# Mixture of Experts: qwen3moe (qwen3's attention, 2 of 8 experts per token) in F32 and in
# a K-quant mix, and Mixtral-style llama with experts (2 of 4, tied output) in F32: in
# Q8_0 the tiny model's router has a near-tie at position 1 that the 8-bit activations
# (llama.cpp's and m64's alike: bench/peercheck) decide the other way than the F32 oracle.
"$synth" --shape tiny --arch qwen3moe --head-dim 32 --experts 8 --experts-used 2 --expert-ffn 64 --type F32 \
  --seed 28 -o "$out/synth-qwen3moe.gguf"
"$m64c" build -q "$out/synth-qwen3moe.gguf" -o "$out/synth-qwen3moe.m64"
"$synth" --shape small-moe --mix q4_k_m --seed 29 -o "$out/synth-qwen3moe-q4_k_m.gguf"
"$m64c" build -q "$out/synth-qwen3moe-q4_k_m.gguf" -o "$out/synth-qwen3moe-q4_k_m.m64"
"$synth" --shape tiny --arch llama --experts 4 --experts-used 2 --type F32 --tied --seed 30 \
  -o "$out/synth-mixtral-tied.gguf"
"$m64c" build -q "$out/synth-mixtral-tied.gguf" -o "$out/synth-mixtral-tied.m64"
# Compressed bundles (zstd): from the real model when present, and from a K-quant mix.
if [ -f "$out/stories260K.m64" ]; then
  "$m64c" compress -q "$out/stories260K.m64" -o "$out/stories260K-z.m64"
fi
"$m64c" compress -q "$out/synth-q4_k_m.m64" -o "$out/synth-q4_k_m-z.m64"
echo "build_bundles: done"

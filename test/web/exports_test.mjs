#!/usr/bin/env node
// exports_test.mjs — the page's list of the module's exports (web/exports.js) is module/exports.h's
// table: the same names in the same order, each with the same ABI version. The page has no build
// step to generate it from the table, so this test keeps the two one fact.
// Usage: node exports_test.mjs
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MODULE_EXPORTS } from '../../web/exports.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const table = fs.readFileSync(path.resolve(here, '../../module/exports.h'), 'utf8');
// Each row of M64_EXPORTS starts "X(name, since,".
const rows = [...table.matchAll(/^\s*X\((m64_\w+),\s*(\d+),/gm)].map((m) => [m[1], Number(m[2])]);
const want = JSON.stringify(rows), got = JSON.stringify(MODULE_EXPORTS);
if (rows.length === 0) {
  console.error('FAIL: no rows found in module/exports.h');
  process.exit(1);
}
if (want !== got) {
  console.error(`FAIL: web/exports.js differs from module/exports.h\n  table: ${want}\n  page:  ${got}`);
  process.exit(1);
}
console.log(`ok: ${rows.length} exports agree`);

#!/usr/bin/env node
// Checks Linux addon binaries before they are packed: each must be an ELF for its target's
// machine, a glibc one must need no symbol version above GLIBC_2.17 (RHEL 7, Amazon Linux 2,
// Ubuntu 14.04 and later load it), a musl one must need no glibc at all.
//
//   node scripts/check-glibc.mjs [--max 2.17] [file.node …]
//
// Without files: every npm/linux-*/*.node present (at least one must be). The target is read from
// the file name (objget.linux-<arch>-<gnu|musl>.node). The versions come from the ELF's
// version-needs table (`readelf -V`, the same GLIBC_x.y that `objdump -T` shows per symbol, but
// readable for every architecture by the host's binutils). Exit 1 on any failure, listing each.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const MACHINES = { x64: 'Advanced Micro Devices X86-64', arm64: 'AArch64' };

const args = process.argv.slice(2);
let max = '2.17';
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--max') max = args[++i];
  else files.push(args[i]);
}
if (files.length === 0) {
  const npm = join(root, 'npm');
  for (const d of existsSync(npm) ? readdirSync(npm).sort() : []) {
    if (!d.startsWith('linux-')) continue;
    for (const f of readdirSync(join(npm, d))) if (f.endsWith('.node')) files.push(join(npm, d, f));
  }
  if (files.length === 0) {
    console.error('check-glibc: no npm/linux-*/*.node to check (run npm run build:linux)');
    process.exit(1);
  }
}

const version = (v) => v.split('.').map(Number);
const above = (a, b) => {
  const [x, y] = [version(a), version(b)];
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0);
  }
  return false;
};
const readelf = (flags, file) =>
  execFileSync('readelf', [...flags, '-W', file], { encoding: 'utf8', maxBuffer: 64 << 20 });

let failed = 0;
for (const file of files) {
  const name = relative(process.cwd(), file) || file;
  const problems = [];
  const m = /\.linux-(x64|arm64)-(gnu|musl)\.node$/.exec(basename(file));
  let line = '';
  if (!m) {
    problems.push('the name does not say its target (objget.linux-<x64|arm64>-<gnu|musl>.node)');
  } else if (!existsSync(file)) {
    problems.push('missing');
  } else {
    const [, arch, abi] = m;
    let header = '';
    try {
      header = readelf(['-h'], file);
    } catch (e) {
      problems.push(`not an ELF file readelf can read: ${String(e.message).split('\n')[0]}`);
    }
    const machine = /Machine:\s*(.+)/.exec(header)?.[1]?.trim();
    if (header && machine !== MACHINES[arch]) {
      problems.push(`machine is ${machine ?? 'unknown'}, not ${MACHINES[arch]} (${arch})`);
    }
    if (header) {
      const needs = readelf(['-V'], file);
      const glibc = [...needs.matchAll(/Name: GLIBC_(\d+(?:\.\d+)+)/g)].map((x) => x[1]);
      const highest = glibc.reduce((h, v) => (h && !above(v, h) ? h : v), '');
      const libs = [...readelf(['-d'], file).matchAll(/\(NEEDED\)\s+Shared library: \[(.+?)\]/g)]
        .map((x) => x[1])
        .sort();
      if (abi === 'gnu') {
        if (!highest) problems.push('needs no GLIBC_ version at all: not a glibc binary?');
        else if (above(highest, max)) {
          const over = [...new Set(glibc.filter((v) => above(v, max)))].sort((a, b) =>
            above(a, b) ? 1 : -1,
          );
          problems.push(
            `needs GLIBC_${highest} > ${max} (${over.map((v) => `GLIBC_${v}`).join(', ')})`,
          );
        }
        line = `${arch}, glibc, highest GLIBC_${highest || 'none'} (limit ${max})`;
      } else {
        if (glibc.length) problems.push(`a musl binary that needs GLIBC_${highest}`);
        const gnuLibs = libs.filter((l) =>
          /^(libc\.so\.6|ld-linux|libpthread\.so\.0|libdl\.so\.2)/.test(l),
        );
        if (gnuLibs.length) problems.push(`a musl binary linked to glibc's ${gnuLibs.join(', ')}`);
        line = `${arch}, musl, no GLIBC_ version`;
      }
      line += `; needs ${libs.join(' ') || 'no shared library'}`;
    }
  }
  if (problems.length) {
    failed++;
    for (const p of problems) console.error(`check-glibc: FAIL ${name}: ${p}`);
  } else {
    console.log(`check-glibc: ok ${name}: ${line}`);
  }
}
process.exit(failed ? 1 : 0);

// What a transfer shows while it runs. On a terminal: cli-progress bars on stderr, one per
// transfer in flight and a total for a set, redrawn at most 10 times a second. Not on a terminal,
// or with --quiet: one line per finished object and a summary. With --json: NDJSON events.
import cliProgress from 'cli-progress';
import type { Progress } from '../index.js';
import { describe, human, type OutputFlags, type Out } from './common.js';

export type Mode = 'tty' | 'lines' | 'json';

export function modeOf(flags: OutputFlags): Mode {
  if (flags.json) return 'json';
  return flags.quiet || !process.stderr.isTTY ? 'lines' : 'tty';
}

/** One finished object. */
export interface Finished {
  src: string;
  dst: string;
  bytes: number;
  [extra: string]: unknown;
}

const FPS = 10;

export class Display {
  private readonly started = performance.now();
  private bars?: cliProgress.MultiBar;
  private readonly items = new Map<number, cliProgress.SingleBar>();
  /** When each transfer's bar started, and its bytes then (its rate counts what came after). */
  private readonly itemStart = new Map<number, { at: number; bytes: number }>();
  /** When each call started: a single transfer's rate counts from there. */
  private readonly callStart = new Map<number, number>();
  private total?: cliProgress.SingleBar;
  private lastEvent = 0;
  private objects = 0;
  private bytes = 0;
  private readonly failures: { src: string; code: string; message: string }[] = [];
  /** The label of each transfer, by its index across the command's calls. */
  private readonly names: string[] = [];

  constructor(
    private readonly mode: Mode,
    private readonly out: Out,
  ) {}

  /**
   * One library call's progress: `onProgress` for its options, and `name` to label its
   * transfers in the order of their `index` (one call for a single transfer).
   */
  call(): { onProgress: (p: Progress) => void; name: (label: string) => void } {
    const base = this.names.length;
    this.callStart.set(base, performance.now());
    return {
      onProgress: (p) => this.progress({ ...p, index: base + (p.index ?? 0) }),
      name: (label) => void this.names.push(label),
    };
  }

  private name(index: number): string {
    const n = this.names[index] ?? `#${index}`;
    return n.length > 28 ? `…${n.slice(-27)}` : n;
  }

  private multibar(): cliProgress.MultiBar {
    this.bars ??= new cliProgress.MultiBar(
      {
        stream: process.stderr,
        fps: FPS,
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        barsize: 20,
        format: '{name} {bar} {percentage}% | {done}/{size} | {rate} | ETA {eta_formatted}',
      },
      cliProgress.Presets.shades_classic,
    );
    return this.bars;
  }

  private rate(bytes: number, since: number): string {
    const s = (performance.now() - since) / 1000;
    return s > 0 ? `${(bytes / 1e6 / s).toFixed(1)} MB/s` : '-';
  }

  private progress(p: Progress): void {
    const index = p.index ?? 0;
    if (this.mode === 'json') {
      // At most FPS events a second, the last one of each set always.
      const now = performance.now();
      const last = p.total !== undefined && p.bytes >= p.total;
      if (!last && now - this.lastEvent < 1000 / FPS) return;
      this.lastEvent = now;
      this.out.event({ event: 'progress', name: this.names[index], ...p });
      return;
    }
    if (this.mode !== 'tty') return;
    const bars = this.multibar();
    if (p.setTotal !== undefined) {
      this.total ??= bars.create(p.setTotal, 0, {});
      this.total.update(p.setBytes ?? 0, {
        name: `total ${p.objectsDone ?? 0}/${p.objectsTotal ?? 0}`,
        done: human(p.setBytes ?? 0),
        size: human(p.setTotal),
        rate: this.rate(p.setBytes ?? 0, this.started),
      });
    }
    let bar = this.items.get(index);
    if (!bar) {
      if (p.total !== undefined && p.bytes >= p.total && p.setTotal !== undefined) return;
      bar = bars.create(p.total ?? 0, 0, {});
      this.items.set(index, bar);
      const single = p.setTotal === undefined && this.callStart.get(index);
      this.itemStart.set(
        index,
        single ? { at: single, bytes: 0 } : { at: performance.now(), bytes: p.bytes },
      );
    }
    const start = this.itemStart.get(index)!;
    if (p.total !== undefined) bar.setTotal(p.total);
    bar.update(p.bytes, {
      name: this.name(index),
      done: human(p.bytes),
      size: p.total === undefined ? '?' : human(p.total),
      rate: this.rate(p.bytes - start.bytes, start.at),
    });
    // In a set, a finished transfer's bar makes room for the next one.
    if (p.setTotal !== undefined && p.total !== undefined && p.bytes >= p.total) {
      bars.remove(bar);
      this.items.delete(index);
    }
  }

  /** An object finished. */
  done(f: Finished): void {
    this.objects++;
    this.bytes += f.bytes;
    if (this.mode === 'json') this.out.event({ event: 'done', ...f });
    else this.line(`${f.src} -> ${f.dst} (${human(f.bytes)})`);
  }

  /** An object not transferred, and why (not a failure). */
  skipped(src: string, why: string): void {
    if (this.mode === 'json') this.out.event({ event: 'skipped', src, reason: why });
    else this.line(`skipped ${src}: ${why}`);
  }

  /** An object failed. */
  fail(src: string, e: unknown): void {
    const d = describe(e);
    this.failures.push({ src, ...d });
    if (this.mode === 'json') this.out.event({ event: 'error', src, ...d });
    else this.line(`error ${src}: ${d.code}: ${d.message}`, true);
  }

  /** A line per object, where there are no bars (they show it; the summary lists failures). */
  private line(text: string, error = false): void {
    if (this.mode === 'tty') return;
    if (error) process.stderr.write(`${text}\n`);
    else this.out.write(text);
  }

  /** Stop drawing (the bars stay on the screen as they are). */
  stop(): void {
    this.bars?.stop();
    this.bars = undefined;
  }

  /** Stop drawing, then the summary: counts, bytes, rate, and each failure. */
  finish(exitCode: number): void {
    this.stop();
    const ms = performance.now() - this.started;
    if (this.mode === 'json') {
      this.out.event({
        event: 'summary',
        objects: this.objects,
        bytes: this.bytes,
        failed: this.failures.length,
        elapsedMs: Math.round(ms),
        exitCode,
      });
      return;
    }
    const failed = this.failures.length ? `, ${this.failures.length} failed` : '';
    const lines = [
      `${this.objects} object${this.objects === 1 ? '' : 's'}, ${human(this.bytes)} in ${(ms / 1000).toFixed(2)} s (${this.rate(this.bytes, this.started)})${failed}`,
      ...this.failures.slice(0, 20).map((f) => `  failed ${f.src}: ${f.code}: ${f.message}`),
      ...(this.failures.length > 20 ? [`  … and ${this.failures.length - 20} more`] : []),
    ];
    // The summary goes with the per-object lines; a terminal's, below the bars (stderr).
    for (const l of lines) {
      if (this.mode === 'tty') process.stderr.write(`${l}\n`);
      else this.out.write(l);
    }
  }
}

import type { Command } from 'commander';
import { AdminClient } from './admin-client.js';

/** What every operator command gets from cli.ts (a slice of CliIo, so the commands stay testable). */
export interface CommandIo {
  env: Record<string, string | undefined>;
  stdout: { write(text: string): unknown; isTTY?: boolean; columns?: number };
  stderr: { write(text: string): unknown };
  exit: (code: number) => void;
}

export interface RemoteOptions {
  url?: string;
  username?: string;
  password?: string;
  json?: boolean;
}

export interface OfflineCapable extends RemoteOptions {
  dataDir?: string;
}

export const DEFAULT_URL = 'http://127.0.0.1:5000';

/** A failure the user can act on: printed as one line, exit code 1. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** --url/--username/--password (and --json) on a command that talks to a running wharf. */
export function remoteOptions(cmd: Command): Command {
  return cmd
    .option('--url <url>', `wharf to talk to (default: $WHARF_URL or ${DEFAULT_URL})`)
    .option('--username <name>', 'admin API user (default: $WHARF_ADMIN_USERNAME)')
    .option('--password <password>', 'admin API password (default: $WHARF_ADMIN_PASSWORD)')
    .option('--json', 'print the JSON answer instead of text');
}

export function adminClient(io: CommandIo, opts: RemoteOptions): AdminClient {
  const url = opts.url ?? io.env.WHARF_URL ?? DEFAULT_URL;
  const username = opts.username ?? io.env.WHARF_ADMIN_USERNAME;
  const password = opts.password ?? io.env.WHARF_ADMIN_PASSWORD;
  return new AdminClient(url, username !== undefined && password !== undefined ? { username, password } : undefined);
}

export function assertOneTarget(opts: OfflineCapable): void {
  if (opts.dataDir !== undefined && opts.url !== undefined) throw new CliError('use either --url (a running wharf) or --data-dir (offline), not both', 2);
}

export function printJson(io: CommandIo, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** 1536 → "1.5 KiB": for people; exact byte counts are in --json. */
export function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${bytes} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

export function when(ms: number | undefined): string {
  return ms === undefined ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from './tmp.js';

export interface SkopeoOptions {
  /** Kill skopeo after this long (default 120 s). */
  timeoutMs?: number;
}

interface RawResult {
  stdout: Buffer;
  stderr: string;
}

/**
 * Runs skopeo with a private policy (accept anything) and an empty private auth file, so neither
 * /etc/containers/policy.json nor a developer's ~/.docker or $XDG_RUNTIME_DIR credentials matter.
 */
async function runRaw(args: string[], opts: SkopeoOptions = {}): Promise<RawResult> {
  const dir = await tempDir('wharf-skopeo-');
  try {
    const policy = join(dir.path, 'policy.json');
    const authfile = join(dir.path, 'auth.json');
    await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
    await writeFile(authfile, JSON.stringify({ auths: {} }));
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: dir.path,
      XDG_RUNTIME_DIR: dir.path,
      XDG_CONFIG_HOME: join(dir.path, 'config'),
      REGISTRY_AUTH_FILE: authfile,
      TMPDIR: dir.path,
    };
    return await new Promise<RawResult>((resolve, reject) => {
      execFile(
        'skopeo',
        ['--policy', policy, '--tmpdir', dir.path, ...args],
        { env, encoding: 'buffer', maxBuffer: 64 * 1024 * 1024, timeout: opts.timeoutMs ?? 120_000, killSignal: 'SIGKILL' },
        (err, stdout, stderr) => {
          const errText = stderr.toString('utf8');
          if (err) {
            reject(new Error(`skopeo ${args.join(' ')} failed (${err.code ?? err.signal ?? err.message}): ${errText.trim()}`));
            return;
          }
          resolve({ stdout, stderr: errText });
        },
      );
    });
  } finally {
    await dir.cleanup();
  }
}

/** skopeo with the given arguments; rejects with stderr in the message on a non-zero exit. */
export async function skopeo(args: string[], opts?: SkopeoOptions): Promise<{ stdout: string; stderr: string }> {
  const r = await runRaw(args, opts);
  return { stdout: r.stdout.toString('utf8'), stderr: r.stderr };
}

let retryFlag: Promise<boolean> | undefined;

/** Whether `skopeo copy` knows --retry-times (1.9.3 does); asked once per process. */
function supportsRetryTimes(): Promise<boolean> {
  retryFlag ??= skopeo(['copy', '--help']).then(
    (r) => r.stdout.includes('--retry-times'),
    () => false,
  );
  return retryFlag;
}

export interface CopyOptions extends SkopeoOptions {
  /** `user:password` for the source registry. */
  srcCreds?: string;
  /** `user:password` for the destination registry. */
  destCreds?: string;
  /** Copy every image of an index (`--all`). */
  all?: boolean;
  /** Convert manifests (`--format oci|v2s2`). */
  format?: 'oci' | 'v2s2';
  preserveDigests?: boolean;
  /** Anything else, placed before the image references. */
  extraArgs?: string[];
}

/**
 * `skopeo copy` with plain-HTTP registries allowed and no retries, so a test sees the first failure
 * and counted upstream requests are not inflated by the client.
 */
export async function copy(src: string, dst: string, opts: CopyOptions = {}): Promise<{ stdout: string; stderr: string }> {
  const args = ['copy'];
  if (src.startsWith('docker://')) args.push('--src-tls-verify=false');
  if (dst.startsWith('docker://')) args.push('--dest-tls-verify=false');
  if (await supportsRetryTimes()) args.push('--retry-times', '0');
  if (opts.srcCreds !== undefined) args.push('--src-creds', opts.srcCreds);
  if (opts.destCreds !== undefined) args.push('--dest-creds', opts.destCreds);
  if (opts.all) args.push('--all');
  if (opts.format !== undefined) args.push('--format', opts.format);
  if (opts.preserveDigests) args.push('--preserve-digests');
  args.push(...(opts.extraArgs ?? []), src, dst);
  return skopeo(args, opts);
}

export interface InspectOptions extends SkopeoOptions {
  creds?: string;
}

/** `skopeo inspect --raw`: the manifest bytes exactly as served (digest-comparable). */
export async function inspectRaw(ref: string, opts: InspectOptions = {}): Promise<Buffer> {
  const args = ['inspect', '--raw'];
  if (ref.startsWith('docker://')) args.push('--tls-verify=false');
  if (opts.creds !== undefined) args.push('--creds', opts.creds);
  args.push(ref);
  return (await runRaw(args, opts)).stdout;
}

import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import type { z } from 'zod';
import { envAssignments, suggest, type Assignment } from './env.js';
import { assign, readYamlFile, type RawMap } from './raw.js';
import { configSchema, DEFAULT_UPSTREAMS, upstreamSchema, type ConfigShape } from './schema.js';
import type { WharfConfig } from './types.js';
import { resolveUpstreams, type ParsedUpstream } from './upstreams.js';
import { childrenOf, inspect } from './walk.js';

export { ConfigFileError } from './raw.js';

/** The configuration is invalid; `problems` lists every problem found, one `where: what` line each. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** An override from outside the file and env, e.g. a command-line flag; wins over everything. */
export interface ConfigOverride {
  /** dotted config path, e.g. `listen`, `dataDir` */
  path: string;
  value: string;
  /** how problems name it, e.g. `--listen` */
  source: string;
}

export interface LoadOptions {
  /** YAML file; defaults to env.WHARF_CONFIG; none → defaults and env only */
  file?: string;
  env: Record<string, string | undefined>;
  /** relative paths (dataDir, credential and CA files) resolve against this; default process.cwd() */
  cwd?: string;
  overrides?: ConfigOverride[];
}

type Path = ReadonlyArray<PropertyKey>;
const dotted = (path: Path): string => path.map(String).join('.');

/**
 * Loads defaults < YAML file < WHARF_* env < overrides, validates everything and throws one
 * ConfigError listing every problem. A missing or unreadable file throws ConfigFileError instead.
 */
export async function loadConfig(opts: LoadOptions): Promise<WharfConfig> {
  const cwd = opts.cwd ?? process.cwd();
  const problems: string[] = [];
  const file = opts.file ?? (opts.env.WHARF_CONFIG || undefined);
  const raw: RawMap = file ? await readYamlFile(resolvePath(cwd, file), problems) : {};
  if (raw.upstreams === undefined) raw.upstreams = structuredClone(DEFAULT_UPSTREAMS) as unknown[];

  // Problems about values that came from env or flags are named after the variable or flag.
  const sources = new Map<string, string>();
  const fromEnv = envAssignments(opts.env);
  problems.push(...fromEnv.problems);
  const flags: Assignment[] = (opts.overrides ?? []).map((o) => ({
    path: o.path.split('.').map((s) => (/^\d+$/.test(s) ? Number(s) : s)),
    value: o.value,
    source: o.source,
  }));
  for (const a of [...fromEnv.assignments, ...flags]) {
    if (assign(raw, a, problems)) sources.set(dotted(a.path), a.source);
  }
  const label = (path: Path): string => sources.get(dotted(path)) ?? (dotted(path) || '(top level)');

  const report = (error: z.ZodError, prefix: Path, schema: z.ZodType): void => {
    for (const issue of error.issues) {
      const path = [...prefix, ...issue.path];
      if (issue.code === 'unrecognized_keys') {
        const known = childrenOf(inspect(schemaAt(schema, issue.path))).map(([k]) => k);
        for (const key of issue.keys) problems.push(`${dotted([...path, key])}: unknown option${suggest(key, known)}`);
      } else {
        problems.push(`${label(path)}: ${issue.message}`);
      }
    }
  };

  const shape = configSchema.shape;
  for (const key of Object.keys(raw)) {
    if (!(key in shape)) problems.push(`${key}: unknown option${suggest(key, Object.keys(shape))}`);
  }
  const section = <K extends Exclude<keyof ConfigShape, 'upstreams'>>(key: K): z.output<ConfigShape[K]> | undefined => {
    const r = shape[key].safeParse(raw[key]);
    if (r.success) return r.data as z.output<ConfigShape[K]>;
    report(r.error, [key], shape[key]);
    return undefined;
  };

  // Parsed one section (and one upstream) at a time so a mistake in one never hides the others'.
  const listen = section('listen');
  const serverTls = section('tls');
  const dataDir = section('dataDir');
  const redis = section('redis');
  const storage = section('storage');
  const cache = section('cache');
  const push = section('push');
  const localNamespaces = section('localNamespaces');
  const metrics = section('metrics');
  const log = section('log');
  const limits = section('limits');
  const server = section('server');
  const uploads = section('uploads');
  const health = section('health');
  const advertiseUrl = section('advertiseUrl');
  const admin = section('admin');
  const ui = section('ui');
  const auth = section('auth');
  const notifications = section('notifications');

  let parsedUpstreams: Array<ParsedUpstream | undefined> = [];
  if (Array.isArray(raw.upstreams)) {
    parsedUpstreams = raw.upstreams.map((item, i) => {
      const r = upstreamSchema.safeParse(item);
      if (r.success) return r.data;
      report(r.error, ['upstreams', i], upstreamSchema);
      return undefined;
    });
  } else {
    problems.push('upstreams: must be a list');
  }
  const upstreams = resolveUpstreams(parsedUpstreams, problems);

  if (cache && cache.lowWatermark >= cache.highWatermark) {
    problems.push(`${label(['cache', 'lowWatermark'])}: must be below cache.highWatermark (${cache.lowWatermark} >= ${cache.highWatermark})`);
  }
  if (server && server.headersTimeout <= server.keepAliveTimeout) {
    problems.push(`${label(['server', 'headersTimeout'])}: must be longer than server.keepAliveTimeout`);
  }
  if (metrics && (metrics.username === undefined) !== (metrics.password === undefined)) {
    problems.push('metrics: set both username and password, or neither');
  }
  if (admin && (admin.username === undefined) !== (admin.password === undefined)) {
    problems.push('admin: set both username and password, or neither');
  }
  if (auth) problems.push(...authProblems(auth));
  if (metrics?.auth && !auth) problems.push('metrics.auth: names users of auth, which is not configured');
  if (metrics?.auth?.length === 0) problems.push('metrics.auth: list at least one user (or leave it out)');
  // Without auth there are no users to name: the UI's gc/verify then follow the admin API's loopback rule.
  if (ui?.admins && !auth) problems.push('ui.admins: names users of auth, which is not configured (without auth, callers on this host may run gc and verify)');
  const endpointNames = (notifications?.endpoints ?? []).map((e) => e.name);
  for (const dup of new Set(endpointNames.filter((n, i) => endpointNames.indexOf(n) !== i))) {
    problems.push(`notifications.endpoints: name ${dup} is used more than once`);
  }
  if (storage?.s3) problems.push(...s3Problems(storage.s3));

  // Files are resolved against cwd and must be readable now, not at the first pull that needs them.
  const files: Array<{ path: Path; get: () => string | undefined; set: (v: string) => void }> = [];
  if (serverTls) {
    files.push({ path: ['tls', 'cert'], get: () => serverTls.cert, set: (v) => (serverTls.cert = v) });
    files.push({ path: ['tls', 'key'], get: () => serverTls.key, set: (v) => (serverTls.key = v) });
  }
  if (redis?.tls) {
    const tls = redis.tls;
    files.push({ path: ['redis', 'tls', 'caFile'], get: () => tls.caFile, set: (v) => (tls.caFile = v) });
  }
  upstreams.forEach((u, i) => {
    const c = u.credentials;
    if (c) {
      files.push({ path: ['upstreams', i, 'credentials', 'passwordFile'], get: () => c.passwordFile, set: (v) => (c.passwordFile = v) });
      files.push({ path: ['upstreams', i, 'credentials', 'tokenFile'], get: () => c.tokenFile, set: (v) => (c.tokenFile = v) });
    }
    files.push({ path: ['upstreams', i, 'tls', 'caFile'], get: () => u.tls.caFile, set: (v) => (u.tls.caFile = v) });
  });
  const s3 = storage?.s3;
  if (s3) files.push({ path: ['storage', 's3', 'secretAccessKeyFile'], get: () => s3.secretAccessKeyFile, set: (v) => (s3.secretAccessKeyFile = v) });
  if (auth) {
    files.push({ path: ['auth', 'htpasswd'], get: () => auth.htpasswd, set: (v) => (auth.htpasswd = v) });
    files.push({ path: ['auth', 'token', 'secretFile'], get: () => auth.token.secretFile, set: (v) => (auth.token.secretFile = v) });
    files.push({ path: ['auth', 'token', 'rootcertbundle'], get: () => auth.token.rootcertbundle, set: (v) => (auth.token.rootcertbundle = v) });
    files.push({ path: ['auth', 'token', 'jwks'], get: () => auth.token.jwks, set: (v) => (auth.token.jwks = v) });
    (auth.tokens ?? []).forEach((t, i) => files.push({ path: ['auth', 'tokens', i, 'tokenFile'], get: () => t.tokenFile, set: (v) => (t.tokenFile = v) }));
  }
  (notifications?.endpoints ?? []).forEach((e, i) => {
    const secret = e.secret;
    if (secret) files.push({ path: ['notifications', 'endpoints', i, 'secret', 'file'], get: () => secret.file, set: (v) => (secret.file = v) });
  });
  for (const f of files) {
    const given = f.get();
    if (given === undefined) continue;
    const abs = resolvePath(cwd, given);
    f.set(abs);
    const problem = await unreadable(abs);
    if (problem) problems.push(`${label(f.path)}: ${problem}`);
  }

  if (
    problems.length > 0 || listen === undefined || dataDir === undefined || !storage || !cache || !push || !localNamespaces || !metrics || !log ||
    !limits || !server || !uploads || !health || !admin || !notifications || !ui
  ) {
    throw new ConfigError(problems);
  }
  const config: WharfConfig = {
    listen,
    dataDir: resolvePath(cwd, dataDir),
    storage,
    upstreams,
    cache,
    push,
    localNamespaces,
    metrics,
    log,
    limits,
    server,
    uploads,
    health,
    admin,
    notifications,
    ui,
  };
  if (redis) config.redis = redis;
  if (serverTls) config.tls = serverTls;
  if (advertiseUrl !== undefined) config.advertiseUrl = advertiseUrl;
  if (auth) config.auth = auth;
  return config;
}

/** Object-storage settings that parse but cannot work. */
function s3Problems(s3: NonNullable<WharfConfig['storage']['s3']>): string[] {
  const problems: string[] = [];
  if (s3.secretAccessKey !== undefined && s3.secretAccessKeyFile !== undefined) problems.push('storage.s3: set secretAccessKey or secretAccessKeyFile, not both');
  const hasSecret = s3.secretAccessKey !== undefined || s3.secretAccessKeyFile !== undefined;
  if ((s3.accessKeyId !== undefined) !== hasSecret) problems.push('storage.s3: set accessKeyId together with secretAccessKey or secretAccessKeyFile, or neither');
  if (s3.partSize < 5 * 1024 ** 2 || s3.partSize > 5 * 1024 ** 3) problems.push('storage.s3.partSize: must be between 5MiB and 5GiB (S3 part limits)');
  if (s3.prefix !== undefined && s3.prefix !== '' && (!s3.prefix.endsWith('/') || s3.prefix.startsWith('/'))) problems.push('storage.s3.prefix: must end with / and not start with one (e.g. prod/)');
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(s3.bucket)) problems.push('storage.s3.bucket: not a valid bucket name (3-63 lower-case letters, digits, dots, dashes)');
  return problems;
}

/** Auth settings that parse but cannot work: nobody to log in as, a token that is both inline and in a file. */
function authProblems(auth: NonNullable<WharfConfig['auth']>): string[] {
  const problems: string[] = [];
  if (auth.token.rootcertbundle !== undefined || auth.token.jwks !== undefined) {
    // External token mode: what the token grants is all that counts, so wharf's own users and rules cannot apply.
    const own = (['htpasswd', 'tokens', 'rules'] as const).filter((k) => auth[k] !== undefined).map((k) => `auth.${k}`);
    if (own.length > 0) {
      problems.push(`auth: auth.token.rootcertbundle/jwks select an external token service, which alone grants access; remove ${own.join(', ')} (or remove rootcertbundle/jwks to use wharf's own users and rules)`);
    }
    if (auth.token.realm === undefined) problems.push('auth.token.realm: required with rootcertbundle/jwks: the external token service\'s URL clients get tokens from');
    return problems;
  }
  if (auth.token.signingalgorithms !== undefined) problems.push('auth.token.signingalgorithms: applies only with rootcertbundle or jwks (an external token service)');
  if (auth.htpasswd === undefined && (auth.tokens ?? []).length === 0) {
    problems.push('auth: set htpasswd or tokens (with no users, auth can only refuse)');
  }
  (auth.tokens ?? []).forEach((t, i) => {
    if ((t.token === undefined) === (t.tokenFile === undefined)) problems.push(`auth.tokens.${i}: set exactly one of token and tokenFile`);
  });
  return problems;
}

function schemaAt(schema: z.ZodType, path: Path): z.ZodType {
  let s = schema;
  for (const seg of path) {
    const node = inspect(s);
    if (node.kind === 'array') s = (node.schema as z.ZodArray<z.ZodType>).element;
    else s = childrenOf(node).find(([k]) => k === seg)?.[1] ?? s;
  }
  return s;
}

async function unreadable(file: string): Promise<string | undefined> {
  try {
    if (!(await stat(file)).isFile()) return `${file} is not a file`;
    await access(file, constants.R_OK);
    return undefined;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `file ${file} does not exist` : `file ${file} is not readable (${code ?? (e as Error).message})`;
  }
}

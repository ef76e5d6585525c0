import { z } from 'zod';
import {
  bool, duration, host, hostPattern, hostPort, httpUrl, int, ipRange, oneOf, ratio, redisUrl, repoPattern, size, tagPattern, str, upstreamName,
} from './leaves.js';

/** Documentation attached to schema nodes; describeOptions() reads it back, so docs and schema cannot drift. */
export interface OptionDoc {
  description: string;
  /** the default as a user would write it; '' when there is none */
  default: string;
}
export const docs = z.registry<OptionDoc>();

function documented<S extends z.ZodType>(schema: S, doc: OptionDoc): S {
  docs.add(schema, doc);
  return schema;
}

function show(value: unknown): string {
  return Array.isArray(value) ? `[${value.map(show).join(', ')}]` : typeof value === 'object' ? '' : String(value);
}

/** An option with a default, written as a user would write it (parsed like user input). */
function def<T extends z.ZodType>(schema: T, value: z.input<T>, description: string) {
  return documented(schema.prefault(value), { description, default: show(value) });
}

/** An option without a default; `absent` says what its absence means. */
function opt<T extends z.ZodType>(schema: T, description: string, absent = '') {
  return documented(schema.optional(), { description, default: absent });
}

/**
 * Generic defaults of a user-defined upstream. A matching built-in profile's values come first
 * (see resolveUpstreams), so these apply to fields neither the user nor a profile sets.
 */
export const UPSTREAM_DEFAULTS = {
  aliases: [] as string[],
  libraryPrefix: false,
  tagFreshness: '5m',
  notFoundTtl: '30s',
  quotaProbeInterval: '30s',
  maxConnections: 16,
  maxConcurrentFetches: 8,
  prefetch: 3,
  timeouts: { connect: '10s', headers: '30s', body: '60s' },
  tls: { insecureSkipVerify: false },
  redirectHosts: [] as string[],
  redirectPublicHttps: false,
  tokenRealmHosts: [] as string[],
};

/** Upstream fields are all optional here: profile values and UPSTREAM_DEFAULTS fill the gaps later. */
function up<T extends z.ZodType>(schema: T, description: string, dflt: unknown) {
  return documented(schema.optional(), { description, default: show(dflt) });
}
const U = UPSTREAM_DEFAULTS;

export const credentialsSchema = z.strictObject({
  username: opt(str(), 'user name for the upstream registry'),
  password: opt(str(), 'password for username'),
  passwordFile: opt(str(), 'file holding the password (read when needed)'),
  token: opt(str(), 'bearer token (instead of username/password)'),
  tokenFile: opt(str(), 'file holding the bearer token'),
});

export const upstreamSchema = z.strictObject({
  name: opt(upstreamName(), 'upstream name; first segment of its repositories\' keys', 'profile name or url host'),
  url: opt(httpUrl(), 'registry base URL', 'from profile'),
  default: opt(bool(), 'unprefixed names go here (daemon.json registry-mirrors)', 'the only upstream, else docker.io'),
  aliases: up(z.array(host()), 'extra registry hosts answered as path prefix or ns (url host always is)', 'from profile, else []'),
  libraryPrefix: up(bool(), 'one-segment names get library/', 'from profile, else false'),
  credentials: credentialsSchema.optional().register(docs, { description: 'upstream login', default: 'anonymous' }),
  tagFreshness: up(duration(), 'a cached tag is served without asking upstream for this long', U.tagFreshness),
  notFoundTtl: up(duration(), 'how long an upstream 404 for a tag is remembered', U.notFoundTtl),
  quotaProbeInterval: up(duration(), 'while the quota is exhausted, at most one HEAD per this interval (whole cluster) checks whether it is back', U.quotaProbeInterval),
  maxConnections: up(int(1), 'connections to the upstream', U.maxConnections),
  maxConcurrentFetches: up(int(1), 'blob fetches from the upstream at once', U.maxConcurrentFetches),
  prefetch: up(int(0), 'a manifest fetched from the upstream starts fetching its config and layers into the cache, this many at once (0: off)', U.prefetch),
  timeouts: z
    .strictObject({
      connect: up(duration(), 'TCP/TLS connect timeout', U.timeouts.connect),
      headers: up(duration(), 'wait for response headers', U.timeouts.headers),
      body: up(duration(), 'longest pause between body bytes', U.timeouts.body),
    })
    .optional(),
  tls: z
    .strictObject({
      caFile: opt(str(), 'PEM bundle trusted for the upstream', 'system CAs'),
      insecureSkipVerify: up(bool(), 'skip TLS certificate checks (testing only)', U.tls.insecureSkipVerify),
      servername: opt(str(), 'TLS SNI / certificate name', 'url host'),
    })
    .optional(),
  redirectHosts: up(z.array(hostPattern()), 'hosts (* wildcards) blob redirects may go to', 'from profile, else []'),
  redirectPublicHttps: up(bool(), 'follow redirects to any public https host', 'true for built-in profiles, else false'),
  tokenRealmHosts: up(z.array(hostPattern()), 'hosts (* wildcards) a token realm may be on besides the url host and its domain', 'from profile, else []'),
});

/** `upstreams` absent: the built-in docker.io profile, as the default upstream. */
export const DEFAULT_UPSTREAMS: ReadonlyArray<{ name: string }> = [{ name: 'docker.io' }];

const hostPortEntry = z.strictObject({
  host: str().register(docs, { description: 'node host', default: '' }),
  port: int(0, 65535).register(docs, { description: 'node port', default: '' }),
});

export const redisSchema = z.strictObject({
  url: redisUrl().register(docs, { description: 'redis:// or rediss:// URL; setting it enables the shared Redis store', default: 'embedded store' }),
  keyPrefix: def(str(), 'wharf:', 'prefix of every Redis key'),
  password: opt(str(), 'Redis password (if not in url)'),
  tls: z
    .strictObject({
      caFile: opt(str(), 'PEM bundle trusted for Redis', 'system CAs'),
      insecureSkipVerify: opt(bool(), 'skip Redis TLS certificate checks', 'false'),
      servername: opt(str(), 'Redis TLS certificate name', 'url host'),
    })
    .optional(),
  sentinels: opt(z.array(hostPortEntry), 'Sentinel addresses (instead of url host)'),
  sentinelName: opt(str(), 'Sentinel master name'),
  cluster: opt(z.array(hostPortEntry), 'Redis Cluster seed nodes'),
  outageGrace: def(duration(), '15m', 'during a Redis outage, tags and links this replica knows are served (stale) for this long; writes are refused (503)'),
  snapshotInterval: def(duration(), '30s', 'how often each replica writes the tags and links it knows to <dataDir>/meta-snapshots/ (read when it starts during an outage); 0: only at shutdown'),
});

/** Token signature algorithms accepted from an external token service (never `none` or HMAC). */
export const TOKEN_SIGNING_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** What auth rules grant; `overlay` is pushing into a `push.overlay` repository (over upstream tags). */
export const AUTH_ACTIONS = ['pull', 'push', 'delete', 'overlay'] as const;

export const configSchema = z.strictObject({
  listen: def(hostPort(), '0.0.0.0:5000', 'host:port of the registry API'),
  tls: z
    .strictObject({
      cert: str().register(docs, { description: 'PEM certificate (server first, then intermediates); setting tls serves HTTPS; re-read on SIGHUP', default: 'plain HTTP' }),
      key: str().register(docs, { description: 'PEM private key of tls.cert; re-read on SIGHUP', default: '' }),
    })
    .optional(),
  dataDir: def(str(), './data', 'blobs and embedded metadata (relative to the working directory)'),
  redis: redisSchema.optional(),
  storage: z
    .strictObject({
      s3: z
        .strictObject({
          endpoint: opt(httpUrl(), 'S3 endpoint URL (Swift, Ceph RGW, MinIO, GCS interoperability, …)', "AWS's endpoint for the region"),
          region: def(str(), 'us-east-1', 'region the requests are signed for'),
          bucket: str().register(docs, { description: 'bucket holding the blobs; setting storage.s3 stores blobs there instead of under dataDir', default: 'filesystem under dataDir' }),
          prefix: opt(str(), 'key prefix of every object (e.g. `prod/`)', 'none'),
          forcePathStyle: def(bool(), false, 'path-style URLs (`endpoint/bucket/key`); most non-AWS implementations need true'),
          accessKeyId: opt(str(), 'access key id', 'the AWS SDK default chain (env, profile, instance role)'),
          secretAccessKey: opt(str(), 'secret access key'),
          secretAccessKeyFile: opt(str(), 'file holding the secret access key (instead of secretAccessKey)'),
          partSize: def(size(), '16MiB', 'multipart part size (5MiB to 5GiB)'),
          redirect: def(bool(), false, 'warm blob GETs answer 307 to a presigned URL (blob bytes no longer pass through wharf)'),
          redirectExpiry: def(duration(), '20m', 'lifetime of a presigned URL'),
        })
        .optional(),
    })
    .prefault({}),
  upstreams: z
    .array(upstreamSchema)
    .optional()
    .register(docs, { description: 'registries mirrored; [] → none (a plain registry)', default: 'docker.io profile' }),
  cache: z
    .strictObject({
      maxSize: opt(size(), 'bytes of mirrored content kept (eviction above)', 'unbounded'),
      highWatermark: def(ratio(), 0.95, 'eviction starts above this fraction of maxSize'),
      lowWatermark: def(ratio(), 0.85, 'eviction stops below this fraction of maxSize'),
      evictionInterval: def(duration(), '30s', 'how often the cache size is checked'),
      fetchTimeout: def(duration(), '30m', 'a shared upstream fetch\'s cache write gives up after this'),
      resumeAttempts: def(int(0), 3, 'Range retries when an upstream body breaks'),
      directWrites: def(bool(), true, 'downloads are written to the disk without passing through the page cache (O_DIRECT) past their first 16 MiB, where the data directory is on ext4, xfs or btrfs'),
    })
    .prefault({}),
  push: z
    .strictObject({
      overlay: def(z.array(repoPattern()), [], 'mirrored repositories that accept pushes (local tags win)'),
      immutableTags: def(z.array(tagPattern()), [], '`<repository>:<tag>` globs of tags that never move to another digest nor are deleted'),
    })
    .prefault({}),
  localNamespaces: def(z.array(repoPattern()), [], 'repositories (push.overlay globs) that are local from the start: never asked upstream, a pull before the first push is MANIFEST_UNKNOWN'),
  auth: z
    .strictObject({
      htpasswd: opt(str(), 'htpasswd file of users (bcrypt entries, `htpasswd -B`); re-read when it changes'),
      tokens: z
        .array(
          z.strictObject({
            user: str().register(docs, { description: 'user the static token authenticates as', default: '' }),
            token: opt(str(), 'the token (sent as `Authorization: Bearer <token>` or as the user\'s password)'),
            tokenFile: opt(str(), 'file holding the token (instead of token)'),
          }),
        )
        .optional()
        .register(docs, { description: 'static tokens (CI, scripts)', default: 'none' }),
      anonymousPull: def(bool(), true, 'callers without credentials may pull every repository'),
      rules: z
        .array(
          z.strictObject({
            repositories: z.array(repoPattern()).register(docs, { description: 'repository globs, matched against the canonical name (see Authentication)', default: '' }),
            users: z.array(str()).register(docs, { description: 'user names; `*` = any authenticated user, `anonymous` = callers without credentials', default: '' }),
            actions: z.array(oneOf(AUTH_ACTIONS)).register(docs, { description: `any of ${AUTH_ACTIONS.join(', ')}`, default: '' }),
          }),
        )
        .optional()
        .register(docs, { description: 'grants; a request is allowed if any rule grants it', default: 'none' }),
      token: z
        .strictObject({
          realm: opt(httpUrl(), 'token endpoint URL sent in the Bearer challenge (required with rootcertbundle/jwks)', '<request origin>/token'),
          service: def(str(), 'wharf', 'service name in challenges and token audience'),
          issuer: def(str(), 'wharf', 'issuer of the tokens wharf signs, or (external mode) the `iss` tokens must carry'),
          rootcertbundle: opt(str(), 'PEM certificate(s) of an external token service; selects external token mode', 'built-in token server'),
          jwks: opt(str(), 'JWK Set file of an external token service\'s keys; selects external token mode', 'none'),
          signingalgorithms: opt(z.array(oneOf(TOKEN_SIGNING_ALGORITHMS)), `external mode: accepted token algorithms, any of ${TOKEN_SIGNING_ALGORITHMS.join(', ')}`, 'all of them'),
          expiry: def(duration(), '5m', 'lifetime of an issued token'),
          secretFile: opt(str(), 'HS256 signing secret (at least 32 bytes); also the web UI session key (in external token mode, its only use)', 'random; shared through Redis when configured'),
        })
        .prefault({}),
    })
    .optional()
    .register(docs, { description: 'client authentication and access rules', default: 'open (no auth)' }),
  metrics: z
    .strictObject({
      listen: opt(hostPort(), 'separate host:port for /metrics', 'main port'),
      username: opt(str(), 'basic-auth user for /metrics'),
      password: opt(str(), 'basic-auth password for /metrics'),
      auth: opt(z.array(str()), 'users of `auth` (htpasswd password or static token, Basic or Bearer) who may scrape /metrics', 'none'),
    })
    .prefault({}),
  log: z.strictObject({ level: def(oneOf(LOG_LEVELS), 'info', `one of ${LOG_LEVELS.join(', ')}`) }).prefault({}),
  limits: z
    .strictObject({
      maxManifestBytes: def(size(), '4MiB', 'largest manifest accepted or fetched'),
      maxBlobBytes: def(size(), '64GiB', 'largest blob accepted by upload or from an upstream'),
      maxUpstreamTagPages: def(int(1), 100, 'an upstream tag list is read for at most this many pages (`Link` headers)'),
      maxUpstreamTags: def(int(1), 100000, 'an upstream tag list keeps at most this many tags; past either bound the list is cut and a warning logged'),
    })
    .prefault({}),
  server: z
    .strictObject({
      keepAliveTimeout: def(duration(), '75s', 'idle keep-alive connection lifetime'),
      headersTimeout: def(duration(), '80s', 'time to receive request headers (> keepAliveTimeout)'),
      idleTimeout: def(duration(), '5m', 'close a connection silent both ways this long'),
      drainTimeout: def(duration(), '30s', 'shutdown waits this long for in-flight requests'),
      trustedProxies: def(z.array(ipRange()), [], 'reverse proxies (IPs or CIDR ranges) whose X-Forwarded-For/-Proto/-Host are believed; [] → none'),
    })
    .prefault({}),
  uploads: z.strictObject({ expiry: def(duration(), '24h', 'idle upload sessions expire after this') }).prefault({}),
  health: z
    .strictObject({ minFreeBytes: def(size(), '1GiB', '/readyz fails below this free space in dataDir') })
    .prefault({}),
  advertiseUrl: opt(httpUrl(), 'this replica\'s URL for peers (cluster mode); default: listen address, or the first non-loopback IPv4 for 0.0.0.0'),
  admin: z
    .strictObject({
      username: opt(str(), 'admin API user'),
      password: opt(str(), 'admin API password'),
    })
    .prefault({}),
  notifications: z
    .strictObject({
      events: z
        .strictObject({ includereferences: def(bool(), false, 'manifest events carry target.references (config, layers, child manifests)') })
        .prefault({}),
      retention: def(duration(), '24h', 'delivered events are kept this long (at most the largest maxPending of them) for `wharf events resend`; 0 keeps none (embedded journal; with Redis the stream keeps its last maxPending entries)'),
      endpoints: z
        .array(
          z.strictObject({
            name: str().register(docs, { description: 'endpoint name (metrics label, `wharf events`); unique', default: '' }),
            url: httpUrl().register(docs, { description: 'URL the events are POSTed to', default: '' }),
            headers: opt(z.record(z.string(), z.array(str())), 'static headers sent with every request; values are lists, as Distribution'),
            timeout: def(duration(), '1s', 'a delivery not answered within this fails'),
            threshold: def(int(1), 10, 'failures in a row before backing off'),
            backoff: def(duration(), '1s', 'first pause after threshold failures; doubles per further failure up to maxBackoff'),
            maxBackoff: def(duration(), '5m', 'longest pause between retries'),
            ignoredmediatypes: def(z.array(str()), [], 'target media types never sent'),
            ignore: z
              .strictObject({
                mediatypes: def(z.array(str()), [], 'target media types never sent'),
                actions: def(z.array(str()), [], 'actions never sent (push, pull, delete, mount, cache, tag-moved, evict, purge)'),
              })
              .prefault({}),
            disabled: def(bool(), false, 'keep the endpoint configured but send nothing (nothing is queued for it)'),
            repositories: opt(z.array(repoPattern()), 'only events of repositories matching these globs (push.overlay syntax, canonical name)', 'all'),
            secret: z
              .strictObject({ file: str().register(docs, { description: 'file holding the HMAC-SHA256 key; each request carries X-Wharf-Signature: sha256=<hex>', default: '' }) })
              .optional(),
            format: def(oneOf(['distribution', 'cloudevents'] as const), 'distribution', 'distribution (Distribution\'s envelope) or cloudevents (one structured CloudEvent per request)'),
            maxPending: def(int(1), 100000, 'events kept for an endpoint that does not take them; the oldest are dropped beyond it'),
          }),
        )
        .optional()
        .register(docs, { description: 'webhook endpoints (see Notifications)', default: 'none' }),
    })
    .prefault({}),
  ui: z
    .strictObject({
      enabled: def(bool(), true, 'serve the web UI at / (its JSON API under /_wharf/api/, which wharf ls and stats read, is served either way)'),
      pullHost: opt(str(), 'registry address shown in the UI\'s pull commands (host[:port])', 'the address the browser used'),
      admins: opt(z.array(str()), 'users of `auth` who may start gc and verify from the UI (Maintenance page); without `auth`, callers on this host may', 'none'),
    })
    .prefault({}),
});

export type ConfigShape = typeof configSchema.shape;

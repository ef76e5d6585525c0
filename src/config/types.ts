/**
 * The validated configuration (after YAML + WHARF_* env + defaults). Durations are milliseconds,
 * sizes are bytes. User-facing names (YAML keys, env names) are documented in README.md.
 */
export interface WharfConfig {
  /** host:port of the registry API */
  listen: string;
  /** absent: plain HTTP */
  tls?: TlsConfig;
  dataDir: string;
  redis?: RedisConfig;
  /** where blobs live: absent `s3` → the filesystem under dataDir */
  storage: { s3?: S3StorageConfig };
  upstreams: UpstreamConfig[];
  cache: CacheConfig;
  push: {
    overlay: string[];
    /** `<repository>:<tag>` globs (push.overlay syntax on each side) of tags that may not move or be deleted */
    immutableTags: string[];
  };
  /** repository globs that are local from the start (never asked upstream) */
  localNamespaces: string[];
  metrics: MetricsConfig;
  log: { level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent' };
  limits: LimitsConfig;
  server: ServerConfig;
  /** upload sessions idle longer than this expire (gc removes them) */
  uploads: { expiry: number };
  health: { minFreeBytes: number };
  /** wharf's own address that peers use to stream an in-flight blob from it (cluster mode) */
  advertiseUrl?: string;
  admin: { username?: string; password?: string };
  /** the web UI (and its JSON API under /_wharf/api/) */
  ui: { enabled: boolean; pullHost?: string; /** users of `auth` who may run gc/verify from the UI */ admins?: string[] };
  /** client authentication and access rules; absent → open */
  auth?: AuthConfig;
  notifications: NotificationsConfig;
}

/** Webhooks: Distribution's `notifications` keys plus wharf's own (see README "Notifications"). */
export interface NotificationsConfig {
  events: { includereferences: boolean };
  /** ms delivered events stay in the embedded journal for `wharf events resend` */
  retention: number;
  endpoints?: NotifyEndpointConfig[];
}

export interface NotifyEndpointConfig {
  name: string;
  url: string;
  headers?: Record<string, string[]>;
  timeout: number;
  threshold: number;
  backoff: number;
  maxBackoff: number;
  ignoredmediatypes: string[];
  ignore: { mediatypes: string[]; actions: string[] };
  disabled: boolean;
  repositories?: string[];
  /** absolute path of the HMAC key file */
  secret?: { file: string };
  format: 'distribution' | 'cloudevents';
  maxPending: number;
}

export type AuthAction = 'pull' | 'push' | 'delete' | 'overlay';

export interface AuthConfig {
  /** absolute path of an htpasswd file (bcrypt entries) */
  htpasswd?: string;
  /** static tokens; tokenFile paths are absolute */
  tokens?: Array<{ user: string; token?: string; tokenFile?: string }>;
  anonymousPull: boolean;
  rules?: Array<{ repositories: string[]; users: string[]; actions: AuthAction[] }>;
  token: {
    /** token endpoint URL for challenges; default `<request origin>/token` */
    realm?: string;
    service: string;
    issuer: string;
    /** token lifetime in milliseconds */
    expiry: number;
    secretFile?: string;
    /** external token mode (see isExternalTokenAuth): PEM bundle of the token service's certificates, absolute */
    rootcertbundle?: string;
    /** external token mode: JWK Set file, absolute */
    jwks?: string;
    /** external token mode: accepted `alg` values; undefined = every supported asymmetric one */
    signingalgorithms?: Array<'RS256' | 'RS384' | 'RS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA'>;
  };
}

export interface S3StorageConfig {
  endpoint?: string;
  region: string;
  bucket: string;
  prefix?: string;
  forcePathStyle: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
  /** absolute path */
  secretAccessKeyFile?: string;
  /** bytes */
  partSize: number;
  redirect: boolean;
  /** milliseconds */
  redirectExpiry: number;
}

export interface RedisConfig {
  url: string;
  keyPrefix: string;
  password?: string;
  tls?: { caFile?: string; insecureSkipVerify?: boolean; servername?: string };
  sentinels?: Array<{ host: string; port: number }>;
  sentinelName?: string;
  cluster?: Array<{ host: string; port: number }>;
  /** ms into a Redis outage that last known tags and links are still served */
  outageGrace: number;
  /** ms between two writes of this replica's snapshot of last known tags and links (0: only at shutdown) */
  snapshotInterval: number;
}

export interface UpstreamConfig {
  name: string;
  url: string;
  default: boolean;
  /** registry hosts this upstream answers for as a path prefix or `ns` value */
  aliases: string[];
  /** docker.io: one-segment names get `library/` */
  libraryPrefix: boolean;
  credentials?: {
    username?: string;
    password?: string;
    passwordFile?: string;
    token?: string;
    tokenFile?: string;
  };
  tagFreshness: number;
  /** how long an upstream 404 for a tag is remembered */
  notFoundTtl: number;
  /** while the upstream's quota is exhausted, at most one probe HEAD per this many ms (whole cluster) */
  quotaProbeInterval: number;
  maxConnections: number;
  maxConcurrentFetches: number;
  /** blobs of a newly fetched image manifest fetched ahead of the client, at once per upstream; 0 = off */
  prefetch: number;
  timeouts: { connect: number; headers: number; body: number };
  tls: { caFile?: string; insecureSkipVerify: boolean; servername?: string };
  /** hosts (wildcards allowed) a blob redirect may go to besides the upstream's own */
  redirectHosts: string[];
  /** follow redirects to any https host that resolves only to public addresses */
  redirectPublicHttps: boolean;
  /** hosts (wildcards allowed) a token realm may be on besides the upstream's own host and domain */
  tokenRealmHosts: string[];
}

export interface CacheConfig {
  /** bytes of mirrored content; undefined = unbounded */
  maxSize?: number;
  highWatermark: number;
  lowWatermark: number;
  /** how often the eviction loop checks the size */
  evictionInterval: number;
  /** a shared fetch's cache write gives up after this long */
  fetchTimeout: number;
  /** retries with Range when an upstream body breaks mid-blob */
  resumeAttempts: number;
  /** downloads bypass the page cache (O_DIRECT) on local block file systems */
  directWrites: boolean;
}

export interface MetricsConfig {
  /** separate host:port for /metrics; undefined = served on the main port */
  listen?: string;
  username?: string;
  password?: string;
  /** users of `auth` (htpasswd or static token) who may scrape; with username/password, either is accepted */
  auth?: string[];
}

export interface LimitsConfig {
  maxManifestBytes: number;
  /** largest blob accepted by upload */
  maxBlobBytes: number;
  /** pages of an upstream tag list read at most */
  maxUpstreamTagPages: number;
  /** tags of an upstream tag list kept at most */
  maxUpstreamTags: number;
}

export interface ServerConfig {
  keepAliveTimeout: number;
  headersTimeout: number;
  /** a connection with no bytes either way for this long is closed */
  idleTimeout: number;
  /** graceful shutdown waits this long for in-flight requests */
  drainTimeout: number;
  /** peers (IPs, CIDR ranges) whose X-Forwarded-* headers are believed; [] = nobody's */
  trustedProxies: string[];
}

/** HTTPS on the main listener; both files re-read on SIGHUP. */
export interface TlsConfig {
  /** PEM certificate chain, absolute path */
  cert: string;
  /** PEM private key, absolute path */
  key: string;
}

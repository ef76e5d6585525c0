export * from './types.js';
export { createUpstream, UpstreamClient, DEFAULT_MAX_MANIFEST_BYTES, type UpstreamDeps } from './client.js';
export { createAuthorizer, type UpstreamAuthorizer, type AuthorizerOptions, type AuthTransport } from './auth/authorizer.js';
export { parseChallenges, pickChallenge, type Challenge } from './auth/challenge.js';
export { Credentials, resolveCredentials } from './auth/credentials.js';
export { isDigestMismatch, UpstreamDigestMismatchError, statusError, type RequestKind } from './errors.js';
export { classifyAddress, hostMatches, type AddressClass } from './redirect-policy.js';
export type { LookupFn, ProxyEnv } from './network.js';

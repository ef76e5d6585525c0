/**
 * Built-in registry profiles, as data. They live in config/ (not upstream/) because config applies them
 * as defaults to configured upstreams, and config may not import upstream/.
 */
export interface RegistryProfile {
  name: string;
  url: string;
  /** registry hosts the profile answers for as a path prefix or `ns` value */
  aliases: readonly string[];
  /** one-segment repository names get `library/` (Docker Hub's official images) */
  libraryPrefix: boolean;
  /** hosts (wildcards allowed) the registry's blob redirects are known to go to */
  redirectHosts: readonly string[];
  redirectPublicHttps: boolean;
  /**
   * hosts its Bearer challenge's token realm may be on besides its own host and registrable domain
   * (listed even when the domain rule already covers them, so the profile says what it needs)
   */
  tokenRealmHosts: readonly string[];
}

export const PROFILES: readonly RegistryProfile[] = [
  {
    name: 'docker.io',
    url: 'https://registry-1.docker.io',
    aliases: ['docker.io', 'index.docker.io', 'registry-1.docker.io'],
    libraryPrefix: true,
    redirectHosts: [
      'production.cloudflare.docker.com',
      '*.cloudflare.docker.com',
      'docker-images-prod.*.r2.cloudflarestorage.com',
      '*.r2.cloudflarestorage.com',
    ],
    redirectPublicHttps: true,
    tokenRealmHosts: ['auth.docker.io'],
  },
  {
    name: 'ghcr.io',
    url: 'https://ghcr.io',
    aliases: ['ghcr.io'],
    libraryPrefix: false,
    redirectHosts: ['pkg-containers.githubusercontent.com', '*.githubusercontent.com'],
    redirectPublicHttps: true,
    tokenRealmHosts: [],
  },
  {
    name: 'oracle',
    url: 'https://container-registry.oracle.com',
    aliases: ['container-registry.oracle.com'],
    libraryPrefix: false,
    // blobs redirect to Oracle Cloud object storage
    redirectHosts: ['*.oraclecloud.com'],
    redirectPublicHttps: true,
    tokenRealmHosts: [],
  },
  {
    name: 'quay.io',
    url: 'https://quay.io',
    aliases: ['quay.io'],
    libraryPrefix: false,
    redirectHosts: [
      'cdn.quay.io',
      'cdn01.quay.io',
      'cdn02.quay.io',
      'cdn03.quay.io',
      '*.quay.io',
      'quayio-production-s3.s3.amazonaws.com',
      '*.s3.amazonaws.com',
      '*.cloudfront.net',
    ],
    redirectPublicHttps: true,
    tokenRealmHosts: [],
  },
];

/** The profile whose name, url host or an alias equals `key` (a name or a host[:port]), if any. */
export function findProfile(key: string): RegistryProfile | undefined {
  const k = key.toLowerCase();
  return PROFILES.find((p) => p.name === k || new URL(p.url).host === k || p.aliases.includes(k));
}

import { ErrorCode, RegistryError, isValidName } from '../oci/index.js';

/** The OCI distribution-spec endpoints (ids from the spec's endpoint table). */
export type RouteName = 'base' | 'catalog' | 'manifest' | 'blob' | 'upload' | 'tags' | 'referrers';

export interface RouteMatch {
  route: RouteName;
  /** repository name exactly as in the raw path */
  name?: string;
  /** tag/digest, digest, or upload id */
  ref?: string;
}

// Ordered: the name is greedy, so `/manifests/` etc. bind to the LAST occurrence in the path.
const TABLE: Array<[RouteName, RegExp]> = [
  ['base', /^\/v2\/?$/],                                             // end-1
  ['catalog', /^\/v2\/_catalog$/],                                   // catalog (Docker extension)
  ['upload', /^\/v2\/(.+)\/blobs\/uploads(?:\/([^/]*))?$/],          // end-4a/4b/5/6/11/13
  ['blob', /^\/v2\/(.+)\/blobs\/([^/]+)$/],                          // end-2, end-10
  ['manifest', /^\/v2\/(.+)\/manifests\/([^/]+)$/],                  // end-3, end-7, end-9
  ['tags', /^\/v2\/(.+)\/tags\/list$/],                              // end-8a/8b
  ['referrers', /^\/v2\/(.+)\/referrers\/([^/]+)$/],                 // end-12a/12b
];

/**
 * Matches the RAW request path (before percent-decoding), so `%2F`, `%2e%2e` or `//` can never turn
 * into a different repository name: anything outside the name grammar is NAME_INVALID.
 */
export function matchRoute(rawPath: string): RouteMatch | undefined {
  for (const [route, re] of TABLE) {
    const m = re.exec(rawPath);
    if (!m) continue;
    const name = m[1];
    if (name !== undefined && !isValidName(name)) {
      throw new RegistryError(ErrorCode.NAME_INVALID, 'invalid repository name', { detail: { name } });
    }
    return { route, name, ref: m[2] };
  }
  return undefined;
}

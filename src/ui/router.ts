import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { page: 'repos' }
  | { page: 'repo'; name: string }
  | { page: 'image'; name: string; ref: string }
  | { page: 'cache' }
  | { page: 'setup' }
  | { page: 'maintenance' }
  | { page: 'login' };

export function parseHash(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return '';
    }
  });
  switch (parts[0]) {
    case 'repo':
      return parts[1] ? { page: 'repo', name: parts[1] } : { page: 'repos' };
    case 'image':
      return parts[1] && parts[2] ? { page: 'image', name: parts[1], ref: parts[2] } : { page: 'repos' };
    case 'cache':
      return { page: 'cache' };
    case 'setup':
      return { page: 'setup' };
    case 'maintenance':
      return { page: 'maintenance' };
    case 'login':
      return { page: 'login' };
    default:
      return { page: 'repos' };
  }
}

export const href = {
  repos: () => '#/',
  repo: (name: string) => `#/repo/${encodeURIComponent(name)}`,
  image: (name: string, ref: string) => `#/image/${encodeURIComponent(name)}/${encodeURIComponent(ref)}`,
  cache: () => '#/cache',
  setup: () => '#/setup',
  maintenance: () => '#/maintenance',
  login: () => '#/login',
};

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseHash(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

import { isIP } from 'node:net';
import { z } from 'zod';
import { formatHostPort, parseHostPort } from './address.js';
import { parseDuration, parseSize } from './units.js';

/**
 * Scalar schemas. Every scalar may arrive as YAML (typed) or as an env string, so each one parses both
 * and reports its own message ("invalid size "12XB"") instead of zod's generic type errors.
 */
function leaf<T>(parse: (value: unknown) => T) {
  return z.unknown().transform((value, ctx): T => {
    if (value === undefined) {
      ctx.issues.push({ code: 'custom', message: 'required', input: value });
      return z.NEVER;
    }
    try {
      return parse(value);
    } catch (e) {
      ctx.issues.push({ code: 'custom', message: (e as Error).message, input: value });
      return z.NEVER;
    }
  });
}

function text(value: unknown, what = 'a string'): string {
  if (typeof value !== 'string') throw new Error(`must be ${what}`);
  return value;
}

export const str = () =>
  leaf((v) => {
    const s = text(v);
    if (s === '') throw new Error('must not be empty');
    return s;
  });

export const bool = () =>
  leaf((v) => {
    if (typeof v === 'boolean') return v;
    const s = typeof v === 'string' ? v.trim().toLowerCase() : typeof v === 'number' ? String(v) : '';
    if (s === 'true' || s === '1') return true;
    if (s === 'false' || s === '0') return false;
    throw new Error(`must be true or false (or 1/0), got ${JSON.stringify(v)}`);
  });

export const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  leaf((v) => {
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new Error(`must be a whole number from ${min}${max === Number.MAX_SAFE_INTEGER ? ' up' : ` to ${max}`}, got ${JSON.stringify(v)}`);
    }
    return n;
  });

/** A fraction in (0, 1]. */
export const ratio = () =>
  leaf((v) => {
    const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    if (!(n > 0 && n <= 1)) throw new Error(`must be a number greater than 0 and at most 1, got ${JSON.stringify(v)}`);
    return n;
  });

export const duration = () =>
  leaf((v) => {
    if (typeof v !== 'string' && typeof v !== 'number') throw new Error('must be a duration such as 30s or 5m');
    return parseDuration(v);
  });

export const size = () =>
  leaf((v) => {
    if (typeof v !== 'string' && typeof v !== 'number') throw new Error('must be a size such as 512MiB or 50GiB');
    return parseSize(v);
  });

/** `host:port`, normalised (`:5000` → `0.0.0.0:5000`). */
export const hostPort = () =>
  leaf((v) => {
    const { host, port } = parseHostPort(text(v, 'host:port'));
    return formatHostPort(host, port);
  });

/** An http(s) URL without credentials, query or fragment; trailing slashes dropped. */
export const httpUrl = () =>
  leaf((v) => {
    let u: URL | undefined;
    try {
      u = new URL(text(v, 'an http(s) URL'));
    } catch {
      u = undefined;
    }
    if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || u.search !== '' || u.hash !== '') {
      throw new Error('must be an http(s) URL');
    }
    if (u.username !== '' || u.password !== '') throw new Error('must not contain credentials (use credentials:)');
    return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
  });

export const redisUrl = () =>
  leaf((v) => {
    const s = text(v, 'a redis:// or rediss:// URL');
    let ok = false;
    try {
      const u = new URL(s);
      ok = (u.protocol === 'redis:' || u.protocol === 'rediss:') && u.hostname !== '';
    } catch {
      ok = false;
    }
    if (!ok) throw new Error('must be a redis:// or rediss:// URL');
    return s;
  });

const HOST = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::\d{1,5})?$/;

/** A registry host (`ghcr.io`, `localhost:5001`), lower-cased. */
export const host = () =>
  leaf((v) => {
    const s = text(v, 'a host name').trim().toLowerCase();
    if (!HOST.test(s)) throw new Error(`must be a host name such as ghcr.io or localhost:5001, got "${s}"`);
    return s;
  });

const HOST_PATTERN = /^(?:[a-z0-9*](?:[a-z0-9*-]*[a-z0-9*])?)(?:\.[a-z0-9*](?:[a-z0-9*-]*[a-z0-9*])?)*(?::\d{1,5})?$/;

/** A host that may contain `*` wildcards (`*.cloudflare.docker.com`). */
export const hostPattern = () =>
  leaf((v) => {
    const s = text(v, 'a host name').trim().toLowerCase();
    if (!HOST_PATTERN.test(s)) throw new Error(`must be a host name, * allowed (e.g. *.example.com), got "${s}"`);
    return s;
  });

const NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d{1,5})?$/;

/** An upstream name: becomes the first segment of canonical repository keys, so host-like. */
export const upstreamName = () =>
  leaf((v) => {
    const s = text(v);
    if (!NAME.test(s)) throw new Error(`must be lower-case letters, digits and . _ - (e.g. ghcr.io or oracle), got "${s}"`);
    return s;
  });

/** A repository pattern such as `library/*`. */
export const repoPattern = () =>
  leaf((v) => {
    const s = text(v);
    if (!/^[a-z0-9*][a-z0-9._/*-]*$/.test(s)) throw new Error(`must be a repository name pattern such as library/*, got "${s}"`);
    return s;
  });

/** A tag pattern `<repository pattern>:<tag glob>` such as `team/**:v*` (the tag glob: tag characters and `*`). */
export const tagPattern = () =>
  leaf((v) => {
    const s = text(v);
    const i = s.lastIndexOf(':');
    if (i <= 0 || !/^[a-z0-9*][a-z0-9._/*-]*$/.test(s.slice(0, i)) || !/^[A-Za-z0-9_*][A-Za-z0-9._*-]*$/.test(s.slice(i + 1))) {
      throw new Error(`must be <repository pattern>:<tag pattern> such as team/**:v*, got "${s}"`);
    }
    return s;
  });

/** An IP address or CIDR range (`10.0.0.0/8`, `fd00::/8`, `192.0.2.7`), as written (IPv4-mapped IPv6 unwrapped). */
export const ipRange = () =>
  leaf((v) => {
    const s = text(v, 'an IP address or CIDR range').trim();
    const [addr = '', bits, extra] = s.split('/');
    const ip = addr.toLowerCase().replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
    const family = isIP(ip);
    const max = family === 4 ? 32 : 128;
    const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
    if (family === 0 || extra !== undefined || !(prefix >= 0 && prefix <= max)) {
      throw new Error(`must be an IP address or CIDR range such as 10.0.0.0/8, got "${s}"`);
    }
    return bits === undefined ? ip : `${ip}/${prefix}`;
  });

export const oneOf = <const T extends readonly string[]>(values: T) =>
  leaf((v): T[number] => {
    if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T[number];
    throw new Error(`must be one of ${values.join(', ')}, got ${JSON.stringify(v)}`);
  });

import { pino, type Logger as PinoLogger } from 'pino';
import type { Logger } from './types.js';

export interface LoggerOptions {
  /** trace | debug | info | warn | error | fatal | silent */
  level: string;
  /** defaults to stdout */
  destination?: NodeJS.WritableStream;
}

/**
 * Credentials must never reach a log line, whether logged bare, inside a request/headers object or
 * inside an upstream's config. fast-redact matches fixed depths, so the nested forms are listed.
 */
export const REDACT_PATHS: readonly string[] = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'proxy-authorization',
  '*["proxy-authorization"]',
  '*.headers["proxy-authorization"]',
  'password',
  '*.password',
  '*.*.password',
  'token',
  '*.token',
  '*.*.token',
  'credentials',
  '*.credentials',
  '*.*.credentials',
  // a whole config logged at start-up: { config: { upstreams: [{ credentials }] } }
  'upstreams[*].credentials',
  '*.upstreams[*].credentials',
  'cookie',
  '*.cookie',
  'headers.cookie',
  '*.headers.cookie',
  '["set-cookie"]',
  '*["set-cookie"]',
  '*.headers["set-cookie"]',
];

export function createLogger(opts: LoggerOptions): Logger {
  const options = {
    level: opts.level,
    redact: { paths: [...REDACT_PATHS], censor: '[Redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Level names read better than pino's numbers in every log store that does not know pino.
    formatters: { level: (label: string) => ({ level: label }) },
  };
  const base = opts.destination ? pino(options, opts.destination) : pino(options);
  return adapt(base);
}

function adapt(p: PinoLogger): Logger {
  return {
    debug: (obj, msg) => p.debug(obj, msg),
    info: (obj, msg) => p.info(obj, msg),
    warn: (obj, msg) => p.warn(obj, msg),
    error: (obj, msg) => p.error(obj, msg),
    child: (bindings) => adapt(p.child(bindings)),
  };
}

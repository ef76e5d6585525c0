import { pino, type Logger as PinoLogger } from 'pino';
import { scrubSecrets, scrubText } from './scrub.js';
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
  // fast-redact is case-sensitive: headers built by hand are often capitalised
  'Authorization',
  '*.Authorization',
  'headers.Authorization',
  '*.headers.Authorization',
  'access_token',
  '*.access_token',
  'refresh_token',
  '*.refresh_token',
  'secret',
  '*.secret',
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

type Level = 'debug' | 'info' | 'warn' | 'error';

function adapt(p: PinoLogger): Logger {
  // Keys are redacted by pino; secrets inside strings (messages quoting a header or a signed URL) by scrub.
  const write = (level: Level) => (obj: object, msg?: string) => {
    if (!p.isLevelEnabled(level)) return;
    p[level](scrubSecrets(obj) as object, msg === undefined ? undefined : scrubText(msg));
  };
  return {
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    child: (bindings) => adapt(p.child(scrubSecrets(bindings) as object)),
  };
}

import { pino, type Logger as PinoLogger } from 'pino';
import { scrubSecrets, scrubText } from './scrub.js';
import type { Logger } from './types.js';

export interface LoggerOptions {
  /** trace | debug | info | warn | error | fatal | silent */
  level: string;
  /** defaults to stdout */
  destination?: NodeJS.WritableStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  const options = {
    level: opts.level,
    timestamp: pino.stdTimeFunctions.isoTime,
    // Level names read better than pino's numbers in every log store that does not know pino.
    formatters: { level: (label: string) => ({ level: label }) },
  };
  const base = opts.destination ? pino(options, opts.destination) : pino(options);
  return adapt(base);
}

type Level = 'debug' | 'info' | 'warn' | 'error';

function adapt(p: PinoLogger): Logger {
  // Credentials must never reach a log line, whether logged bare, inside a request's headers or inside an
  // upstream's config: scrub.ts walks every object (secret fields at any depth, secrets quoted in strings).
  // pino's own redact (fast-redact) matches fixed paths only, and its wildcards cost ~60 µs a line.
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

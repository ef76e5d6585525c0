import { Cluster, Redis, type Command } from 'ioredis';

/**
 * A command fails after this long instead of hanging (a Redis that accepts connections but does not answer):
 * with the offline queue off, a Redis that is down fails commands at once, so callers get UNAVAILABLE within 1 s.
 */
export const REDIS_COMMAND_TIMEOUT_MS = 900;

const armed = new WeakSet<Command>();

/**
 * ioredis's own `commandTimeout` is a plain timer, and Node runs due timers before it reads its sockets: a
 * process that could not run for longer than the timeout (a busy event loop, a loaded machine) rejected
 * commands whose replies were already waiting unread, and clients got 503s from a healthy Redis. This deadline
 * lets the event loop read its sockets once more (the poll phase runs before setImmediate callbacks) before it
 * calls a command lost.
 */
function armDeadline(command: Command, ms: number): void {
  if (armed.has(command)) return; // a Cluster sends a command again on redirection: one deadline for all
  armed.add(command);
  const timer = setTimeout(() => {
    setImmediate(() => {
      if (!command.isResolved) command.reject(new Error('Command timed out'));
    });
  }, ms);
  const clear = (): void => clearTimeout(timer);
  command.promise.then(clear, clear);
}

/** A standalone or Sentinel client whose commands fail after REDIS_COMMAND_TIMEOUT_MS without an answer. */
export class DeadlineRedis extends Redis {
  override sendCommand(...args: Parameters<Redis['sendCommand']>): unknown {
    armDeadline(args[0], REDIS_COMMAND_TIMEOUT_MS);
    return super.sendCommand(...args);
  }
}

/** A Redis Cluster client whose commands fail after REDIS_COMMAND_TIMEOUT_MS without an answer. */
export class DeadlineCluster extends Cluster {
  override sendCommand(...args: Parameters<Cluster['sendCommand']>): unknown {
    armDeadline(args[0], REDIS_COMMAND_TIMEOUT_MS);
    return super.sendCommand(...args);
  }
}

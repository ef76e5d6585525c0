import type { Cluster, Redis } from 'ioredis';

export interface InvalidationOptions {
  /** connection used for PUBLISH (any, e.g. the store's) */
  publisher: Redis | Cluster;
  /** a connection of its own: once subscribed, ioredis allows it nothing else */
  subscriber: Redis | Cluster;
  channel: string;
  /** this replica's id: its own messages are skipped (its memo already dropped the key) */
  selfId: string;
  /** a key another replica changed */
  onRemote: (key: string) => void;
  /**
   * The subscription came back after a break: messages sent meanwhile are lost, so every fresh cached
   * entry is suspect.
   */
  onResync?: () => void;
  onError?: (err: Error) => void;
}

export interface InvalidationBus {
  /**
   * Tells the other replicas a key changed. Resolves once Redis has handed the message to their connections
   * (its PUBLISH reply), so a reply sent after it cannot overtake the news; never rejects (a lost message costs
   * at most the memo TTL).
   */
  publish(key: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Memo invalidation across replicas over Redis pub/sub: after a write on one replica, the others drop the
 * key, so none serves a tag pushed or refreshed elsewhere after the change. Message = "<sender id>\n<key>".
 */
export async function startInvalidation(opts: InvalidationOptions): Promise<InvalidationBus> {
  const { subscriber, publisher, channel, selfId } = opts;
  const prefix = `${selfId}\n`;
  subscriber.on('message', (ch: string, message: string) => {
    if (ch !== channel || message.startsWith(prefix)) return;
    const cut = message.indexOf('\n');
    if (cut < 0) return;
    opts.onRemote(message.slice(cut + 1));
  });
  let broken = false;
  subscriber.on('close', () => {
    broken = true;
  });
  subscriber.on('ready', () => {
    // ioredis resubscribes on reconnect by itself; what was published meanwhile is gone.
    if (!broken) return;
    broken = false;
    opts.onResync?.();
  });
  await subscriber.subscribe(channel);
  return {
    async publish(key) {
      await publisher.publish(channel, prefix + key).catch((e: Error) => opts.onError?.(e));
    },
    async close() {
      await subscriber.unsubscribe(channel).catch(() => undefined);
      await subscriber.quit().catch(() => subscriber.disconnect());
    },
  };
}

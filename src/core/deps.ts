import type { Metrics, Logger } from '../observability/types.js';
import type { BlobStore, MetadataStore } from '../store/types.js';
import type { Cluster } from './cluster.js';
import type { CorePolicy } from './policy.js';
import type { EventSink, Namespaces } from './types.js';

/** Everything the core services need, injected by app.ts. */
export interface CoreDeps {
  store: BlobStore;
  meta: MetadataStore;
  namespaces: Namespaces;
  policy: CorePolicy;
  metrics: Metrics;
  logger: Logger;
  now: () => number;
  /** present when replicas share metadata and storage */
  cluster?: Cluster;
  /** webhooks: mirror events (`cache`, `tag-moved`) */
  events?: EventSink;
}

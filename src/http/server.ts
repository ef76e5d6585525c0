import Koa from 'koa';
import type { EventSink, PullSink, Registry } from '../core/types.js';
import type { Logger, Metrics } from '../observability/types.js';
import { adminEndpoint, type AdminRouterDeps } from './admin.js';
import { tokenEndpoint, type ClientAuth, type ExternalTokenAuth } from './auth/index.js';
import { forwarded } from './forwarded.js';
import { accessLog } from './middleware/access-log.js';
import { errors } from './middleware/errors.js';
import { apiEndpoint, type ApiDeps } from './api/index.js';
import { uiAssets } from './ui-assets.js';
import { ociRouter } from './oci.js';
import { opsEndpoint, type OpsDeps } from './ops.js';

export interface HttpDeps {
  registry: Registry;
  metrics: Metrics;
  logger: Logger;
  maxManifestBytes: number;
  ops: OpsDeps;
  /** /_wharf/admin/… (absent: no admin API) */
  admin?: AdminRouterDeps;
  /** client authentication and access rules for /v2 and /token (absent: open) */
  clientAuth?: ClientAuth;
  /** external token mode instead: /v2 allowed as far as another service's tokens grant (no /token here) */
  externalAuth?: ExternalTokenAuth;
  /** the web UI (`ui.enabled`): its JSON API, and where its built assets are (absent: not built) */
  ui?: { api: ApiDeps; assetsDir?: string; pages: boolean };
  /** reverse proxies (IPs, CIDR ranges) whose X-Forwarded-* headers are believed */
  trustedProxies?: readonly string[];
  /** webhooks (absent: none configured) */
  events?: EventSink;
  /** manifest pulls counted for the web UI's top images (absent: not counted) */
  pulls?: PullSink;
}

/** The Koa application: access log → error rendering → OCI endpoints / ops endpoints. */
export function createHttpApp(deps: HttpDeps): Koa {
  const app = new Koa();
  app.silent = true;
  app.on('error', (err: Error) => deps.logger.debug({ err: err.message }, 'response error'));
  app.use(forwarded(deps.trustedProxies ?? []));
  app.use(accessLog(deps.logger, deps.metrics));
  app.use(errors(deps.logger));
  // Every router below matches the raw path, case-sensitively (endpoints.ts, routes.ts): one rule for guard and route.
  if (deps.admin) app.use(adminEndpoint(deps.admin));
  const auth = deps.clientAuth;
  if (auth) app.use(tokenEndpoint(auth, deps.registry.namespaces));
  if (deps.ui) {
    app.use(apiEndpoint(deps.ui.api));
    if (deps.ui.pages) app.use(uiAssets(deps.ui.assetsDir, deps.logger));
  }
  const guard = auth ?? deps.externalAuth;
  app.use(ociRouter({ registry: deps.registry, metrics: deps.metrics, maxManifestBytes: deps.maxManifestBytes, events: deps.events, pulls: deps.pulls, authorize: guard && ((ctx, m) => guard.authorize(ctx, m)) }));
  app.use(opsEndpoint(deps.ops));
  return app;
}

// What a store is to the rest of the server: a driver. Each store has one driver file
// (store/*-driver.ts) holding its name, its settings rows (they join tcpkv-server's settings table,
// so its variables, flags, --help lines and docs rows come from there), the checks between those
// settings, and how it opens — mapping its own start-up failures to StartupErrors that name the
// setting. drivers.ts lists the drivers; open-store.ts picks one and opens it. The driver loads the
// store's module only when it opens, so one store's dependencies (gRPC for etcd) cost the others nothing.

import type { Logger } from 'pino';
import { StartupError } from '../../common/errors.js';
import type { Setting, SettingValues } from '../../common/settings.js';
import type { StoreEvents } from '../events.js';
import type { ChangeFeedLimits } from './change-feed.js';
import type { Store, StoreLimits } from './store.js';

/** What every store is given at open besides its settings: computed once by the composition root. */
export interface StoreDeps {
  /** the store limits it enforces (docs/store.md, Limits) */
  readonly limits: StoreLimits;
  readonly logger: Logger;
  /** where it reports its own work (fsyncs, compactions, etcd calls); absent = nowhere */
  readonly events?: StoreEvents | undefined;
  /** the bounds of its watch history (Store.changes); absent = the defaults */
  readonly feedLimits?: ChangeFeedLimits | undefined;
}

export type SettingRows = Record<string, Setting<unknown>>;

/** A driver's settings as resolved, plus the rest of the server's (read only to warn about them). */
export type DriverConfig<S extends SettingRows> = SettingValues<S> & { readonly [key: string]: unknown };

export interface StoreDriver<S extends SettingRows = SettingRows> {
  /** what TCPKV_STORE names it; also the store's `kind` */
  readonly name: string;
  /** its rows of the settings table (services/common/setting-names.ts has their names and defaults) */
  readonly settings: S;
  /** with TCPKV_STORE unset: whether these settings ask for this store (drivers.ts: the first that does wins) */
  impliedBy(config: DriverConfig<S>): boolean;
  /** the checks between its own settings, before anything opens: a message naming them, or undefined */
  settingsProblem?(config: DriverConfig<S>): string | undefined;
  /** opens the store (store.ts, "start"); throws a StartupError for a setting or file it cannot use */
  open(config: DriverConfig<S>, deps: StoreDeps): Promise<Store>;
  /** where its data lives, for a start-up failure it did not name itself ("in TCPKV_DATA_DIR=/data") */
  location?(config: DriverConfig<S>): string;
}

/** Declares a driver, keeping its settings' types for its own functions. */
export function storeDriver<S extends SettingRows>(driver: StoreDriver<S>): StoreDriver<S> {
  return driver;
}

/** A store that would not open for a reason its driver did not name (one line, exit 2). */
export class StoreOpenError extends StartupError {
  constructor(message: string, setting?: string, options?: ErrorOptions) {
    super('TCPKV_ERR_STORE_OPEN', message, setting, options);
  }
}

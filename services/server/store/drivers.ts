// The store drivers, and the TCPKV_STORE setting that names one. This is the only list of stores:
// a new store is its driver file (store/driver.ts) and one line here (docs/store.md, "Adding a store").
// With TCPKV_STORE unset, the first driver whose settings ask for it is used, in this order.

import { SERVER_SETTING_NAMES } from '../../common/setting-names.js';
import { oneOf, setting } from '../../common/settings.js';
import type { SettingRows, StoreDriver } from './driver.js';
import { etcdDriver } from './etcd-driver.js';
import { logDriver } from './log-driver.js';
import { memoryDriver } from './memory-driver.js';
import { sqliteDriver } from './sqlite-driver.js';

export const STORE_DRIVERS = [etcdDriver, sqliteDriver, logDriver, memoryDriver] as const;

type Driver = (typeof STORE_DRIVERS)[number];
type Intersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;
/** Every driver's rows in one object type, so each setting keeps its own value type in ServerConfig. */
type DriverSettings = Intersection<Driver['settings']>;

const names = STORE_DRIVERS.map((d) => d.name) as Driver['name'][];

/** TCPKV_STORE, then every driver's own rows: the storage part of tcpkv-server's settings table. */
export const storeSettings = {
  store: setting({ ...SERVER_SETTING_NAMES.store, flag: 'store', valueName: 'store', describe: `the store to use; unset = the first of ${names.join(', ')} whose own settings are given (docs/store.md)`, parse: oneOf(...names) }),
  ...(Object.assign({}, ...STORE_DRIVERS.map((d) => d.settings)) as DriverSettings),
};

/** The driver the configuration asks for: TCPKV_STORE, else the first whose settings ask for it. */
export function chooseDriver(config: { readonly store?: string | undefined; readonly [key: string]: unknown }): StoreDriver {
  const drivers = STORE_DRIVERS as readonly StoreDriver<SettingRows>[];
  const named = config.store === undefined ? undefined : drivers.find((d) => d.name === config.store);
  return named ?? drivers.find((d) => d.impliedBy(config as never))!;
}

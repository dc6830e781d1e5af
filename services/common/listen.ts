// `server.listen` as a promise: resolves with the address bound, rejects with the listen error
// (EADDRINUSE, EACCES, …) — the one error the caller reports; later errors go to its own listener.

import type { AddressInfo, Server } from 'node:net';

export function listenOn(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

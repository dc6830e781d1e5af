// The texts of SPEC §3 answers: the seed's own words and the ones tcpkv adds. Shared by the server's
// rules and the client's scenario expectations, so the two cannot disagree.

export const Texts = Object.freeze({
  invalidAddress: 'Invalid Address(url)',
  methodNotAllowed: 'Method not allowed',
  notAllowedHost: (host: string) => `Not allowed host: ${host}`,
  createNeedsPost: 'Select the appropriate method(Create mode => POST)',
  updateNeedsPut: 'Select the appropriate method(Update mode => PUT)',
  noRoute: 'Not found: POST /create adds data, PUT /update changes it',
  emptyDb: 'No data in DB',
  listingHeader: 'The data in DB is as follows.',
  noContent: 'There is no content. Please check',
  badFormat: 'Key-value format is not valid.',
  blankKey: 'Key value does not exist or is blank.',
  keyExists: 'The key already exists!',
  badUtf8: 'The body is not valid UTF-8.',
  postOk: 'Post Successfully OK',
  updatedHeader: 'Update Data as follow:',
  createdHeader: 'Update(New) Data as follow:',
  putOk: 'Update with new data Successfully OK',
  shuttingDown: 'Server is shutting down',
  shutdownDisabled: 'Shutdown is disabled on this server',
  shutdownBadToken: 'Shutdown needs the right token (Authorization: Bearer <token>)',
  shutdownNotLoopback: 'Shutdown is allowed only from loopback (or configure TCPKV_SHUTDOWN_TOKEN)',
  storeUnavailable: 'Storage is unavailable; nothing was changed. Try again later',
  storeIndeterminate: 'Storage did not confirm the change in time: it may or may not have been applied. Check with GET',
  clientNotAllowed: (address: string) => `Client not allowed: ${address}`,
});


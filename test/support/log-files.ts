// Reading a log file's layout in tests, independently of the code under test.

/** Where each record starts, read from the file's own length fields (either format version). */
export function recordStarts(log: Buffer): number[] {
  const header = log.subarray(0, 13).toString('latin1') === 'TCPKV-LOG v1\n' ? 9 : 13;
  const starts: number[] = [];
  for (let at = 13; at < log.length; at += header + log.readUInt32LE(at)) starts.push(at);
  return starts;
}

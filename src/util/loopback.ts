/**
 * Loopback: the addresses only this machine reaches (127.0.0.0/8, ::1, ::ffff:127.x.y.z,
 * localhost). Plain HTTP, and a server without TLS, are allowed only there: anything beyond
 * loopback crosses a network where others can read and change what is sent.
 */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(?:\.\d{1,3}){3}$/.test(h) || /^::ffff:127(?:\.\d{1,3}){3}$/.test(h);
}

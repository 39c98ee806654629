// The least a Node.js echo server can do: Node's own `net`, every chunk written back as it
// arrives, nothing else (no limits, no statistics, no backpressure). The echo benchmark runs it
// beside socketkit's server to show what Node itself costs per round trip.
// Usage: node bench/node/net_echo_server.js HOST PORT
import { createServer } from 'node:net';

const [host = '127.0.0.1', port = '0'] = process.argv.slice(2);
const server = createServer({ noDelay: true }, (socket) => {
  socket.on('data', (chunk) => socket.write(chunk));
  socket.on('error', () => socket.destroy());
});
server.listen(Number(port), host, () => console.log(`listening on ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));

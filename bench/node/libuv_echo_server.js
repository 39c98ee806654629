// An echo server on Node's internal libuv handles, below `net` and streams: accept, read into a
// fresh buffer, write it back, nothing else (no backpressure, no limits). Not an API socketkit
// could ship (`process.binding` is deprecated and internal); the echo benchmark runs it only to
// show how far below `net` Node itself can go.
// Usage: node bench/node/libuv_echo_server.js HOST PORT
const [host = '127.0.0.1', port = '0'] = process.argv.slice(2);
const { TCP, constants } = process.binding('tcp_wrap');
const { WriteWrap, streamBaseState, kReadBytesOrError, kArrayBufferOffset } = process.binding('stream_wrap');

const server = new TCP(constants.SERVER);
const bound = server.bind(host, Number(port));
if (bound !== 0 || server.listen(511) !== 0) {
  console.error(`cannot listen on ${host}:${port}`);
  process.exit(2);
}
const name = {};
server.getsockname(name);
console.log(`listening on ${name.port}`);

function afterWrite() {}

function onread(arrayBuffer) {
  const nread = streamBaseState[kReadBytesOrError];
  if (nread > 0) {
    const req = new WriteWrap();
    req.handle = this;
    req.oncomplete = afterWrite;
    req.async = false;
    if (this.writeBuffer(req, Buffer.from(arrayBuffer, streamBaseState[kArrayBufferOffset], nread)) !== 0) this.close();
  } else if (nread < 0) {
    this.readStop();
    this.close();
  }
}

server.onconnection = (err, handle) => {
  if (err) return;
  handle.setNoDelay(true);
  handle.onread = onread;
  handle.readStart();
};
process.on('SIGTERM', () => process.exit(0));

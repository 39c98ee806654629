// A real toxiproxy client from npm (toxiproxy-node-client) driving `socketkit proxy --api`
// unchanged, through the flows its README shows: create a proxy, add a toxic and feel it,
// update the toxic and the proxy, remove them, populate, list, reset, version, errors.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Toxiproxy, ToxiproxyError, type ICreateToxicBody, type Latency } from 'toxiproxy-node-client';
import { startApiServer } from '../src/proxy/index.js';
import { startManagedEchoServer } from '../src/server/index.js';
import { formatEndpoint, parseEndpoint, type Endpoint } from '../src/net/endpoint.js';
import { rawConnect, roundTripMs } from './helpers/net.js';

const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

describe('toxiproxy-node-client against socketkit proxy --api', () => {
  it('create, addToxic, update, remove, populate, getAll, reset, getVersion', async (t) => {
    const echo = await startManagedEchoServer(v4);
    t.after(() => echo.close(0));
    const server = await startApiServer(v4);
    t.after(() => server.close());
    const toxiproxy = new Toxiproxy(`http://${formatEndpoint(server.endpoint)}`);
    const upstream = formatEndpoint(echo.endpoint);

    assert.match(await toxiproxy.getVersion(), /socketkit/);
    const proxy = await toxiproxy.createProxy({ name: 'echo', listen: '127.0.0.1:0', upstream });
    assert.equal(proxy.name, 'echo');
    const listen = parseEndpoint(proxy.listen, { defaultHost: '127.0.0.1' });

    // As its README: a named toxic with every field.
    const body: ICreateToxicBody<Latency> = { name: 'latency_downstream', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 150, jitter: 0 } };
    const toxic = await proxy.addToxic(body);
    assert.equal(toxic.name, 'latency_downstream');
    const c = await rawConnect(listen);
    t.after(() => c.destroy());
    assert.ok((await roundTripMs(c, 'x')) >= 149, 'the toxic is felt');

    const updated = await toxic.update({ ...body, attributes: { latency: 5, jitter: 0 } });
    assert.equal(updated.attributes.latency, 5);
    const got = await proxy.getToxic<Latency>('latency_downstream');
    assert.equal(got.attributes.latency, 5);
    await updated.remove();
    await assert.rejects(proxy.getToxic('latency_downstream'), ToxiproxyError);

    const off = await proxy.update({ ...proxy.toJson(), enabled: false });
    assert.equal(off.enabled, false);
    await assert.rejects(rawConnect(listen));

    const populated = await toxiproxy.populate([{ name: 'second', listen: '127.0.0.1:0', upstream, enabled: true }]);
    assert.deepEqual(Object.keys(populated), ['second']);
    assert.deepEqual(Object.keys(await toxiproxy.getAll()).sort(), ['echo', 'second']);
    await toxiproxy.reset();
    assert.equal((await toxiproxy.get('echo')).enabled, true);

    await assert.rejects(toxiproxy.createProxy({ name: 'echo', listen: '127.0.0.1:0', upstream }), ToxiproxyError);
    await assert.rejects(toxiproxy.get('missing'), ToxiproxyError);
    await (await toxiproxy.get('second')).remove();
    assert.deepEqual(Object.keys(await toxiproxy.getAll()), ['echo']);
  });
});

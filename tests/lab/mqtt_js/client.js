// The lab's MQTT.js program: connects as most Node MQTT programs do (mqtt.connect with the URL and
// options), prints its 'connect' and 'error' events the usual way, publishes once, then ends. Run
// with DEBUG=mqttjs* for the library's own trace.
//
//   node client.js URL CLIENT_ID [--ca FILE] [--username U --password P] [--seconds N]

const path = require('path');
const fs = require('fs');
const mqtt = require(process.env.CORRELATOR_MQTT_JS || 'mqtt');

const [url, clientId, ...rest] = process.argv.slice(2);
const opt = {};
for (let i = 0; i < rest.length; i += 2) opt[rest[i].replace(/^--/, '')] = rest[i + 1];
const options = { clientId, reconnectPeriod: 1000, connectTimeout: 5000 };
if (opt.ca) options.ca = [fs.readFileSync(path.resolve(opt.ca))];
if (opt.username) { options.username = opt.username; options.password = opt.password; }

const client = mqtt.connect(url, options);
client.on('connect', () => {
  console.log(`connected to ${url} as ${clientId}`);
  client.publish(`spBv1.0/Plant8/NDATA/${clientId}`, 'temperature=21.5', { qos: 1 }, () => client.end());
});
client.on('error', (err) => { console.error('Connection error: ', err); });
setTimeout(() => { client.end(true); process.exit(0); }, 1000 * Number(opt.seconds || 3));

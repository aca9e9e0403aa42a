// The lab's Node.js edge application that logs through log4js (its file appender's default
// layout: `[ISO time] [LEVEL] category - message`, an Error's stack on the lines after), as many
// Node programs and OPC UA/MQTT gateways do: MQTT.js connects, the 'connect' and 'error' events
// are logged, one message is published, then it ends.
//
//   node edge.js URL CLIENT_ID LOG_FILE [--username U --password P] [--seconds N]

const mqtt = require(process.env.CORRELATOR_MQTT_JS || 'mqtt');
const log4js = require(process.env.CORRELATOR_LOG4JS || 'log4js');

const [url, clientId, logFile, ...rest] = process.argv.slice(2);
const opt = {};
for (let i = 0; i < rest.length; i += 2) opt[rest[i].replace(/^--/, '')] = rest[i + 1];
log4js.configure({
  appenders: { file: { type: 'file', filename: logFile } },
  categories: { default: { appenders: ['file'], level: 'info' } },
});
const log = log4js.getLogger(clientId);
const options = { clientId, reconnectPeriod: 1000, connectTimeout: 5000 };
if (opt.username) { options.username = opt.username; options.password = opt.password; }

log.info(`starting: broker ${url}, client id ${clientId}`);
const client = mqtt.connect(url, options);
client.on('connect', () => {
  log.info(`connected to ${url}`);
  client.publish(`spBv1.0/Plant9/NDATA/${clientId}`, 'temperature=21.5', { qos: 1 }, () => client.end());
});
client.on('error', (err) => { log.error(err); });
setTimeout(() => { client.end(true); log4js.shutdown(() => process.exit(0)); }, 1000 * Number(opt.seconds || 3));

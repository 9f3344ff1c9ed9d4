// kafkajs over SASL (and TLS) driven by compat-tests/test_security.py.
//
// Env: KFDB_BROKER (host:port), TOPIC, MECHANISM (plain | scram-sha-256 | scram-sha-512),
//      USERNAME, PASSWORD, SSL_CA (a PEM file: connect with TLS trusting it; unset: no TLS).
// Sends 5 messages to partition 0 of TOPIC, then tries to connect with a wrong password, and prints
//   RESULT {"offsets":[...], "wrongPassword":"<error name>"}
const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')

function client (password) {
  return new Kafka({
    clientId: 'kfdb-compat-kafkajs-secure',
    brokers: [process.env.KFDB_BROKER],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 10000,
    requestTimeout: 30000,
    retry: { retries: 2 },
    ssl: process.env.SSL_CA ? { ca: [fs.readFileSync(process.env.SSL_CA, 'utf-8')] } : false,
    sasl: { mechanism: process.env.MECHANISM, username: process.env.USERNAME, password }
  })
}

async function main () {
  const producer = client(process.env.PASSWORD).producer()
  await producer.connect()
  const sent = await producer.send({
    topic: process.env.TOPIC,
    acks: -1,
    messages: [0, 1, 2, 3, 4].map((i) => ({ value: `kafkajs-secure-${i}`, partition: 0 }))
  })
  await producer.disconnect()
  let wrongPassword = 'none'
  const intruder = client('wrong-password').producer()
  try {
    await intruder.connect()
  } catch (e) {
    wrongPassword = e.name
  }
  console.log('RESULT ' + JSON.stringify({ offsets: sent.map((r) => r.baseOffset), wrongPassword }))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

// kafkajs consumer group scenario driven by compat-tests/test_groups_kafkajs.py.
//
// Env: KFDB_BROKER (host:port), TOPIC (created here with PARTITIONS partitions), GROUP,
//      PARTITIONS (default 6), WAIT_MS (bound of every wait, default 30000).
//
// 1. Three consumers (c1, c2, c3) subscribe in GROUP (fromBeginning, autoCommit off, each message
//    committed with commitOffsets after it was "processed"); wait until their assignments cover
//    every partition; produce batch "one"; wait until every produced position was consumed.
// 2. c2 disconnects (LeaveGroup); wait until c1 and c3 cover every partition; produce batch "two";
//    wait until consumed. Then c1 and c3 disconnect; admin.fetchOffsets.
// 3. Produce batch "three"; a new consumer c4 (a consumer restart) joins and consumes; disconnect;
//    admin.fetchOffsets.
// Prints one line RESULT {...}: produced positions per batch, assignments seen at each step, the
// ledger of every delivery [member, partition, offset, value], commit errors, committed offsets.
// Python does the checking; a wait that runs out throws (exit 1) with the state so far.
const { Kafka, logLevel } = require('kafkajs')

const broker = process.env.KFDB_BROKER
const topic = process.env.TOPIC
const groupId = process.env.GROUP
const partitions = parseInt(process.env.PARTITIONS || '6', 10)
const waitMs = parseInt(process.env.WAIT_MS || '30000', 10)

const kafka = new Kafka({
  clientId: 'kfdb-compat-kafkajs-group',
  brokers: [broker],
  logLevel: logLevel.WARN,
  connectionTimeout: 10000,
  requestTimeout: 30000,
  retry: { retries: 5 }
})

const ledger = [] // [member, partition, offset, value]
const uncommittedOk = [] // [partition, offset] whose commit failed
const commitErrors = []
const events = [] // [member, event, detail]
const members = {} // name -> { consumer, assigned: Set }

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function waitFor (cond, what) {
  const deadline = Date.now() + waitMs
  while (!cond()) {
    if (Date.now() > deadline) {
      const state = Object.entries(members).map(([n, m]) => `${n}: [${[...m.assigned]}]`).join(', ')
      throw new Error(`timed out after ${waitMs} ms waiting for ${what}; assignments ${state}; ` +
        `ledger ${ledger.length}; last events ${JSON.stringify(events.slice(-10))}`)
    }
    await sleep(100)
  }
}

async function startMember (name) {
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: 6000,
    heartbeatInterval: 1000,
    rebalanceTimeout: 30000,
    maxWaitTimeInMs: 500,
    retry: { retries: 5 }
  })
  const m = { consumer, assigned: new Set() }
  members[name] = m
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    const parts = (e.payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b)
    m.assigned = new Set(parts)
    events.push([name, 'join', parts])
  })
  consumer.on(consumer.events.CRASH, (e) => events.push([name, 'crash', String(e.payload.error)]))
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      const offset = Number(message.offset)
      ledger.push([name, partition, offset, message.value.toString()])
      try {
        await consumer.commitOffsets([{ topic, partition, offset: String(offset + 1) }])
      } catch (e) {
        commitErrors.push([name, partition, offset, String(e)])
        uncommittedOk.push([partition, offset])
      }
    }
  })
  return m
}

async function stopMember (name) {
  await members[name].consumer.disconnect() // LeaveGroup
  members[name].assigned = new Set()
  events.push([name, 'disconnected', []])
}

function splitAmong (names) {
  const sets = names.map((n) => members[n].assigned)
  const all = new Set()
  let total = 0
  for (const s of sets) {
    if (s.size === 0) return false
    total += s.size
    for (const p of s) all.add(p)
  }
  return total === partitions && all.size === partitions
}

function snapshot (names) {
  const out = {}
  for (const n of names) out[n] = [...members[n].assigned].sort((a, b) => a - b)
  return out
}

async function produce (producer, tag, n) {
  const messages = []
  for (let i = 0; i < n; i++) messages.push({ value: `${tag}-${i}`, partition: i % partitions })
  const res = await producer.send({ topic, acks: -1, messages })
  const perPartition = {}
  for (const m of messages) perPartition[m.partition] = (perPartition[m.partition] || 0) + 1
  const positions = []
  for (const r of res) {
    if (r.errorCode !== 0) throw new Error(`produce error ${JSON.stringify(r)}`)
    const base = Number(r.baseOffset)
    for (let k = 0; k < perPartition[r.partition]; k++) positions.push([r.partition, base + k])
  }
  return positions
}

function consumedAll (positions) {
  const seen = new Set(ledger.map(([, p, o]) => `${p}:${o}`))
  return positions.every(([p, o]) => seen.has(`${p}:${o}`))
}

async function fetchCommitted (admin) {
  const res = await admin.fetchOffsets({ groupId, topics: [topic] })
  const out = {}
  for (const t of res) for (const p of t.partitions) out[p.partition] = Number(p.offset)
  return out
}

async function main () {
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }], waitForLeaders: true })
  const producer = kafka.producer({ idempotent: false, allowAutoTopicCreation: false })
  await producer.connect()
  const result = { produced: {}, assignments: {} }

  for (const n of ['c1', 'c2', 'c3']) await startMember(n)
  await waitFor(() => splitAmong(['c1', 'c2', 'c3']), 'c1, c2, c3 to split the partitions')
  result.assignments.three = snapshot(['c1', 'c2', 'c3'])
  result.produced.one = await produce(producer, 'one', 600)
  await waitFor(() => consumedAll(result.produced.one), 'batch one consumed')
  result.ledgerAfterOne = ledger.length

  await stopMember('c2')
  await waitFor(() => splitAmong(['c1', 'c3']), 'c1 and c3 to own every partition after c2 left')
  result.assignments.two = snapshot(['c1', 'c3'])
  result.produced.two = await produce(producer, 'two', 600)
  await waitFor(() => consumedAll(result.produced.two), 'batch two consumed')
  await stopMember('c1')
  await stopMember('c3')
  result.committedAfterTwo = await fetchCommitted(admin)

  result.produced.three = await produce(producer, 'three', 60)
  const before = ledger.length
  await startMember('c4')
  await waitFor(() => members.c4.assigned.size === partitions, 'c4 to get every partition')
  await waitFor(() => consumedAll(result.produced.three), 'batch three consumed by c4')
  await stopMember('c4')
  result.ledgerOfC4 = ledger.slice(before)
  result.committedAfterThree = await fetchCommitted(admin)

  await producer.disconnect()
  await admin.disconnect()
  Object.assign(result, { ledger, uncommittedOk, commitErrors, events })
  process.stdout.write('RESULT ' + JSON.stringify(result) + '\n')
}

main().catch((e) => {
  console.error('kafkajs error:', e && e.stack ? e.stack : e)
  console.error('events:', JSON.stringify(events.slice(-20)))
  process.exit(1)
})

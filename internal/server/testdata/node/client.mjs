// Drives the server with OpenAI's official Node client, unmodified: like any
// program using it, it reads OPENAI_BASE_URL and OPENAI_API_KEY. TestNodeClient
// passes the rest in the JSON file named by PVBUILD_INPUT and checks the JSON
// report this prints.
import { readFileSync } from 'node:fs';
import OpenAI, { toFile } from 'openai';

const input = JSON.parse(readFileSync(process.env.PVBUILD_INPUT, 'utf8'));
const client = new OpenAI({ maxRetries: 8 });
const training = readFileSync(input.trainingFile);

// Upload unless a file of this name and size is there already.
async function upload() {
  for await (const f of client.files.list({ purpose: 'fine-tune' })) {
    if (f.filename === input.filename && f.bytes === training.length) {
      return { file: f, reused: true };
    }
  }
  const file = await client.files.create({
    file: await toFile(training, input.filename),
    purpose: 'fine-tune',
  });
  return { file, reused: false };
}

const first = await upload();
const second = await upload();

const created = await client.fineTuning.jobs.create({
  model: input.baseModel,
  training_file: first.file.id,
  suffix: input.suffix,
  seed: 7,
  metadata: input.metadata,
  method: {
    type: 'supervised',
    supervised: { hyperparameters: { n_epochs: 2, batch_size: 'auto', learning_rate_multiplier: 'auto' } },
  },
});

const states = [created.status];
const terminal = new Set(['succeeded', 'failed', 'cancelled']);
const deadline = Date.now() + 30_000;
let job = created;
while (!terminal.has(job.status)) {
  if (Date.now() > deadline) throw new Error(`job ${job.id} still ${job.status}`);
  await new Promise((resolve) => setTimeout(resolve, 25));
  job = await client.fineTuning.jobs.retrieve(created.id);
  if (states.at(-1) !== job.status) states.push(job.status);
}

// One job a page, so that the client follows has_more and after.
const listed = [];
for await (const j of client.fineTuning.jobs.list({ metadata: input.metadata, limit: 1 })) listed.push(j.id);
const unmatched = [];
for await (const j of client.fineTuning.jobs.list({ metadata: { pvbuild_key: 'no-such-key' } })) unmatched.push(j.id);

const events = [];
for await (const e of client.fineTuning.jobs.listEvents(created.id, { limit: 2 })) events.push(e.message);

const models = [];
for await (const m of client.models.list()) models.push(m.id);

const judged = await client.chat.completions.create({
  model: input.judgeModel,
  messages: [{ role: 'user', content: input.judgePrompt }],
  max_completion_tokens: 1,
  temperature: 0,
  seed: 0,
  logprobs: true,
  top_logprobs: 20,
});

const answered = await client.chat.completions.create({
  model: job.fine_tuned_model,
  messages: [{ role: 'user', content: input.question }],
  max_tokens: 512,
  temperature: 1,
  seed: 0,
  n: 2,
});

let notFound = null;
try {
  await client.fineTuning.jobs.retrieve('ftjob-0123abcd');
} catch (e) {
  notFound = { status: e.status, type: e.type, code: e.code ?? null, isNotFoundError: e instanceof OpenAI.NotFoundError };
}

console.log(JSON.stringify({
  file: first.file,
  reused: second.reused,
  reusedID: second.file.id,
  created,
  states,
  job,
  listed,
  unmatched,
  events,
  models,
  judged,
  answered,
  notFound,
}));

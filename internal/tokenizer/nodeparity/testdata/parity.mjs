// Reference side of the Go parity tests: reads a request (JSON file named by
// argv[2]), runs @huggingface/tokenizers and @huggingface/jinja from the
// node_modules folder in PVBUILD_NODE_MODULES, prints one JSON answer.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const modules = process.env.PVBUILD_NODE_MODULES;
if (!modules) {
  console.error("PVBUILD_NODE_MODULES is not set");
  process.exit(2);
}
const require = createRequire(path.join(modules, "noop.js"));
const { Tokenizer } = require("@huggingface/tokenizers");
const { Template } = require("@huggingface/jinja");

const req = JSON.parse(readFileSync(process.argv[2], "utf8"));
const tokJSON = JSON.parse(readFileSync(req.tokenizer, "utf8"));
const config = JSON.parse(readFileSync(req.config, "utf8"));

// Overrides of added-token flags, to check lstrip/rstrip against the reference.
for (const [content, flags] of Object.entries(req.added_flags ?? {})) {
  const tok = tokJSON.added_tokens.find((t) => t.content === content);
  Object.assign(tok, flags);
}

const tokenizer = new Tokenizer(tokJSON, config);
// split_special_tokens=True has no switch here. After the ordinary
// encodings, the tokenizer's added-token splitter is rebuilt without the
// special tokens (building a second tokenizer would double the run time);
// the ids then match for text with no special token overlapping another
// added token.
const dropSpecial = (tk) => {
  const keep = tk.added_tokens.filter((t) => !t.special);
  for (const t of tk.added_tokens) if (t.special) tk.added_tokens_map.delete(t.content);
  tk.splitter_unnormalized = new tk.splitter_unnormalized.constructor(
    keep.filter((t) => !(t.normalized && tk.normalizer)).map((t) => t.content),
  );
  return tk;
};

const encode = (tk, text) => tk.encode(text, { add_special_tokens: false }).ids;
const out = {};
out.encode = (req.encode ?? []).map((t) => encode(tokenizer, t));
out.decode = (req.decode ?? []).map((ids) =>
  (ids ?? []).length === 0 ? "" : tokenizer.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }),
);
if (req.chat) {
  const template = new Template(config.chat_template);
  out.chat = req.chat.map((c) =>
    template.render({
      messages: c.messages,
      add_generation_prompt: c.add_generation_prompt ?? false,
      ...(c.enable_thinking === undefined ? {} : { enable_thinking: c.enable_thinking }),
      bos_token: config.bos_token ?? "",
      eos_token: config.eos_token ?? "",
    }),
  );
  out.chat_ids = out.chat.map((text) => encode(tokenizer, text));
}
if (req.encode_split_special) {
  dropSpecial(tokenizer);
  out.encode_split_special = req.encode_split_special.map((t) => encode(tokenizer, t));
}
process.stdout.write(JSON.stringify(out));

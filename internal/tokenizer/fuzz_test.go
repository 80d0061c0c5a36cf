package tokenizer

import (
	"testing"
)

// FuzzParse feeds hostile tokenizer.json bytes: Parse may refuse them but
// must not panic, and what it accepts must encode and decode without panics.
func FuzzParse(f *testing.F) {
	f.Add(synthetic(f, []string{"a+b", "ab+c", " +t"}, []map[string]any{added(300, "<s>", "special", "lstrip", "rstrip"), added(301, "x", "single_word")}, nil))
	f.Add(synthetic(f, nil, nil, map[string]any{"type": "NFC"}))
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":[["a","b"]]},"pre_tokenizer":{"type":"ByteLevel","use_regex":true,"add_prefix_space":true},"decoder":{"type":"ByteLevel"},"added_tokens":[{"id":5,"content":"<x>","special":true}]}`))
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0},"merges":null,"byte_fallback":true,"unk_token":"a","fuse_unk":true},"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"String":" "},"behavior":"Contiguous","invert":true},{"type":"ByteLevel","use_regex":false}]},"decoder":{"type":"ByteLevel"}}`))
	f.Add([]byte(`{"model":{"vocab":{"\u00e9\"":3}}}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := Parse(data)
		if err != nil {
			return
		}
		for _, s := range []string{"", "ab c  abc\n\n<s> x <x>", "\xff\xfe é 😀 'S 123456", string(data[:min(len(data), 64)])} {
			ids := tk.Encode(s)
			for _, id := range ids {
				if id < 0 || id >= tk.VocabSize() {
					t.Fatalf("Encode(%q) gave id %d outside [0, %d)", s, id, tk.VocabSize())
				}
			}
			_ = tk.Decode(ids)
			_ = tk.EncodeSplitSpecial(s)
		}
	})
}

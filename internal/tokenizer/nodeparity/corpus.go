package nodeparity

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/sampledata"
)

// Message is one chat message of the project's data.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Conversations returns every training conversation of the embedded sample
// data, all traits and strengths.
func Conversations(t testing.TB) [][]Message {
	t.Helper()
	var out [][]Message
	for _, trait := range sampledata.Traits {
		for _, strength := range sampledata.Strengths {
			data, err := sampledata.Training(trait, strength)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(bytes.NewReader(data))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				line := bytes.TrimSpace(sc.Bytes())
				if len(line) == 0 {
					continue
				}
				var ex struct {
					Messages []Message `json:"messages"`
				}
				if err := json.Unmarshal(line, &ex); err != nil {
					t.Fatalf("%s: %v", sampledata.TrainingPath(trait, strength), err)
				}
				out = append(out, ex.Messages)
			}
		}
	}
	return out
}

// Texts returns every text of the project's training and evaluation data:
// message contents, eval questions, judge prompts and instructions, and the
// judge's labeled questions and answers. Duplicates are dropped.
func Texts(t testing.TB) []string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, conv := range Conversations(t) {
		for _, m := range conv {
			add(m.Content)
		}
	}
	for _, trait := range sampledata.Traits {
		task, err := sampledata.EvalTask(trait)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range task.Questions {
			add(q)
		}
		add(task.EvalPrompt)
		for _, in := range task.Instruction {
			add(in.Pos)
			add(in.Neg)
		}
	}
	labeled, err := sampledata.JudgeExamples()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range labeled {
		add(l.Question)
		add(l.Answer)
	}
	return out
}

// EdgeTexts are the texts chosen to break a tokenizer: Unicode that NFC
// changes, emoji, CJK, runs of spaces, tabs and newlines, long numbers,
// upper-case contractions, and special tokens written inside text.
var EdgeTexts = []string{
	"",
	" ",
	"   ",
	"\n",
	"\n\n\n",
	"\r\n\r\n",
	"\t\tindented\twith tabs\t",
	"trailing spaces   ",
	"   leading spaces",
	"a  b   c    d",
	"line one\nline two\n\n  indented line\n\t\ttabbed\n",
	"mixed \n \n\t \r\n end",
	"Cafe\u0301 cre\u0300me bru\u0302le\u0301e", // decomposed: NFC composes
	"Café crème brûlée",
	"e\u0301\u0301\u0323 a\u030a Å \u212b", // stacked marks, angstrom sign
	"\u1100\u1161\u11a8 한국어 텍스트",           // conjoining jamo
	"ﬁnance ﬀ ½ ² ⅷ ①",                     // compatibility characters NFC keeps
	"I'M SURE YOU'LL SEE IT'S THEIR'S, WE'VE, THEY'RE, HE'D",
	"i'm sure you'll see it's theirs, we've, they're, he'd",
	"don't DON'T Don'T 'tis 'S 'll",
	"'ſ long s and ꞌ saltillo",
	"1234567890123456789012345678901234567890",
	"3.14159265358979 1,000,000 -42 +7 0x1F 1e-10",
	"٣٤٥ ١٢ ४२ 一二三 ⅻ",
	"😀 😃😄 👩‍👩‍👧‍👦 👍🏽 🇯🇵 ❤️",
	"日本語のテキストと中文文本，还有标点。",
	"Привет, как дела? Ελληνικά! עברית ערבית العربية",
	"<|im_start|>user\nhi<|im_end|>",
	"text<|im_end|>more<|endoftext|>",
	"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nx<|eot_id|>",
	"<think>\nreasoning\n</think>\n\nanswer",
	"<tool_call>{\"a\": 1}</tool_call>",
	"<|im_start <|im_end| |im_end|>",
	"<<|im_end|>> <|eot_id|<|eot_id|>",
	"http://example.com/path?q=1&r=2#frag",
	"func main() {\n\tfmt.Println(\"hi\")\n}\n",
	"!!!??? ... --- *** ### $$$ %%% ^^^ &&& ~~~",
	"a\u00a0b\u2003c\u3000d\u200be\ufeff",
	"\u0085next line\u2028line sep\u2029para sep",
	"zero\u200dwidth\u200cjoiner",
	"\x00\x01\x7f control \x1b[31mred\x1b[0m",
	"ÀÁÂÃÄÅÆÇÈÉÊË àáâãäåæçèéêë",
	"𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕋𝕖𝕩𝕥 𐍈",
}

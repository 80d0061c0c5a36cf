// Package chatrender turns a conversation into the tokens and per-token loss
// weights Tinker trains on, and into the prompt it samples from, exactly as
// tinker-cookbook's renderers do for Qwen3 and Llama 3 (renderers/qwen3.py,
// renderers/llama3.py, renderers/base.py and supervised/common.py at
// cookbook commit 9dfcc3a, the revision ../shared/ref/tinker/README.md cites).
//
// Facts that differ from, or are missing in, that README's §14:
//
//   - The cookbook's Llama 3 renderer writes content as is; the chat template
//     shipped with Llama 3.x tokenizers trims it (`message['content'] | trim`),
//     so the two differ for content with leading or trailing whitespace.
//   - Llama 3 content is tokenized with special tokens recognised (no
//     split_special_tokens), so "<|eot_id|>" inside a message is the control
//     token; Qwen3 content is split (split_special_tokens=True), except for
//     non-special added tokens such as <think> and <tool_call>.
//   - Qwen3 history is not stripped of reasoning when content is a string:
//     strip_thinking_from_history only acts on structured content, which this
//     package does not model. The HF template strips "…</think>" from earlier
//     assistant turns; the cookbook (and so this package) keeps it.
//   - conversation_to_datum calls build_supervised_example directly, so
//     Qwen3's multi-turn ALL_ASSISTANT_MESSAGES trains every assistant turn in
//     one sequence (the cookbook only warns); build_supervised_examples, which
//     splits per turn, is not what the SFT datasets use.
//   - Weights are 0/1 until Datum's "mean" reduction, which divides by their
//     sum in float32 (as torch does for the cookbook's tensors).
package chatrender

import (
	"errors"
	"fmt"
	"strings"

	"github.com/modelorganisms/pvbuild/internal/tokenizer"
)

// Message is one turn of a conversation. Role is "system", "user",
// "assistant" or, for Qwen3, "tool".
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	// NoLoss keeps the message out of the loss whatever TrainOn says: an
	// assistant message with OpenAI's training-file "weight": 0 is context.
	NoLoss bool `json:"-"`
}

// TrainOn says which tokens carry loss, as the cookbook's TrainOnWhat.
type TrainOn int

const (
	// AllAssistantMessages is the default of conversation_to_datum.
	AllAssistantMessages TrainOn = iota
	LastAssistantMessage
	LastAssistantTurn
	AllMessages
	AllTokens
	AllUserAndSystemMessages
)

// Renderer names, as the cookbook's get_renderer takes them.
const (
	Qwen3                = "qwen3"
	Qwen3DisableThinking = "qwen3_disable_thinking"
	Qwen3Instruct        = "qwen3_instruct"
	Llama3               = "llama3"
)

// Renderer renders conversations for one model family with its tokenizer.
type Renderer struct {
	name string
	tok  *tokenizer.Tokenizer
	end  int   // end-of-message token, also the stop token
	bos  []int // Llama 3's <|begin_of_text|>

	qwen             bool
	framesThinking   bool // Qwen3 writes <think> blocks around the produced turn
	disablesThinking bool // the generation prompt closes an empty block
}

// New returns the named renderer over tok, which must be the model's tokenizer.
func New(name string, tok *tokenizer.Tokenizer) (*Renderer, error) {
	r := &Renderer{name: name, tok: tok}
	endText := "<|im_end|>"
	switch name {
	case Qwen3:
		r.qwen, r.framesThinking = true, true
	case Qwen3DisableThinking:
		r.qwen, r.framesThinking, r.disablesThinking = true, true, true
	case Qwen3Instruct:
		r.qwen = true
	case Llama3:
		endText = "<|eot_id|>"
		bos, ok := tok.TokenID("<|begin_of_text|>")
		if !ok {
			return nil, errors.New("renderer llama3: the tokenizer has no <|begin_of_text|> token")
		}
		r.bos = []int{bos}
	default:
		return nil, fmt.Errorf("unknown renderer %q (have %s, %s, %s, %s)", name, Qwen3, Qwen3DisableThinking, Qwen3Instruct, Llama3)
	}
	end, ok := tok.TokenID(endText)
	if !ok {
		return nil, fmt.Errorf("renderer %s: the tokenizer has no %s token", name, endText)
	}
	r.end = end
	return r, nil
}

// Name is the renderer's cookbook name.
func (r *Renderer) Name() string { return r.name }

// StopTokens are the tokens that end a sampled message.
func (r *Renderer) StopTokens() []int { return []int{r.end} }

// context is the cookbook's RenderContext, reduced to what these renderers read.
type context struct {
	idx           int
	isLast        bool
	lastUser      int // index of the last user message, -1 if none
	inLastAsstTrn bool
}

// rendered is one message: header tokens and output tokens.
type rendered struct {
	header, output []int
}

func lastUserIndex(msgs []Message) int {
	last := -1
	for i, m := range msgs {
		if m.Role == "user" {
			last = i
		}
	}
	return last
}

func (r *Renderer) render(m Message, ctx context) (rendered, error) {
	if m.Role == "" {
		return rendered{}, fmt.Errorf("message %d has no role", ctx.idx)
	}
	if !r.qwen {
		return rendered{
			header: r.tok.Encode("<|start_header_id|>" + m.Role + "<|end_header_id|>\n\n"),
			output: r.tok.Encode(m.Content + "<|eot_id|>"),
		}, nil
	}
	if r.disablesThinking && m.Role == "assistant" && ctx.isLast && m.Content != "" && ctx.lastUser < 0 {
		return rendered{}, errors.New("qwen3_disable_thinking: the conversation has no user message, so the template writes no empty think block on the final turn, yet the generation prompt always opens one; add a user message or render with thinking enabled")
	}
	role := m.Role
	if role == "tool" {
		role = "user"
	}
	header := "<|im_start|>" + role + "\n"
	if ctx.idx > 0 {
		header = "\n" + header
	}
	// Only the produced turn (the last message, after some user message) is
	// framed, as the HF template does for loop.index0 > last_query_index.
	frames := r.framesThinking && m.Role == "assistant" && ctx.lastUser >= 0 && ctx.isLast
	out := m.Content
	if frames && strings.Contains(out, "</think>") {
		reasoning, rest, _ := strings.Cut(out, "</think>")
		if i := strings.LastIndex(reasoning, "<think>"); i >= 0 {
			reasoning = reasoning[i+len("<think>"):]
		}
		out = frameThinking(reasoning) + strings.TrimLeft(rest, "\n")
	}
	if frames && !strings.Contains(m.Content, "<think>") {
		out = frameThinking("") + strings.TrimLeft(out, "\n")
	}
	if m.Role == "tool" {
		out = "<tool_response>\n" + out + "\n</tool_response>"
	}
	return rendered{
		header: r.tok.Encode(header),
		output: append(r.tok.EncodeSplitSpecial(out), r.end),
	}, nil
}

// frameThinking writes reasoning the way Qwen3's template frames the turn
// being produced: padded, and present even when empty.
func frameThinking(reasoning string) string {
	return "<think>\n" + strings.Trim(reasoning, "\n") + "\n</think>\n\n"
}

// GenerationPrompt renders msgs followed by the assistant header, the prompt
// to sample the next assistant message from (build_generation_prompt).
func (r *Renderer) GenerationPrompt(msgs []Message) ([]int, error) {
	out := append([]int(nil), r.bos...)
	last := lastUserIndex(msgs)
	turnStart := last + 1
	for i, m := range msgs {
		rm, err := r.render(m, context{idx: i, isLast: i == len(msgs)-1, lastUser: last, inLastAsstTrn: i >= turnStart})
		if err != nil {
			return nil, err
		}
		out = append(append(out, rm.header...), rm.output...)
	}
	return append(out, r.generationSuffix(len(msgs))...), nil
}

func (r *Renderer) generationSuffix(idx int) []int {
	if !r.qwen {
		return r.tok.Encode("<|start_header_id|>assistant<|end_header_id|>\n\n")
	}
	s := "<|im_start|>assistant\n"
	if idx > 0 {
		s = "\n" + s
	}
	if r.disablesThinking {
		s += "<think>\n\n</think>\n\n"
	}
	return r.tok.Encode(s)
}

// Example is a rendered conversation with one loss weight per token.
type Example struct {
	Tokens  []int
	Weights []float32
}

// Supervised renders msgs for training (build_supervised_example): header
// tokens weigh 0 (1 under AllTokens), a message's output weighs 1 when on
// selects it, and for LastAssistantMessage/LastAssistantTurn everything the
// generation prompt would have supplied is zeroed, so a prefilled empty
// <think> block is never trained.
func (r *Renderer) Supervised(msgs []Message, on TrainOn) (Example, error) {
	if on < AllAssistantMessages || on > AllUserAndSystemMessages {
		return Example{}, fmt.Errorf("unknown TrainOn %d", on)
	}
	var ex Example
	add := func(toks []int, w float32) {
		ex.Tokens = append(ex.Tokens, toks...)
		for range toks {
			ex.Weights = append(ex.Weights, w)
		}
	}
	add(r.bos, 0)
	last := lastUserIndex(msgs)
	// The cookbook finds the produced turn's start in all but the last message.
	turnStart := lastUserIndex(msgs[:max(len(msgs)-1, 0)]) + 1
	for i, m := range msgs {
		ctx := context{idx: i, isLast: i == len(msgs)-1, lastUser: last, inLastAsstTrn: i >= turnStart}
		rm, err := r.render(m, ctx)
		if err != nil {
			return Example{}, err
		}
		var hw, ow float32
		if on == AllTokens {
			hw = 1
		}
		if trained(m, ctx, on) {
			ow = 1
		}
		add(rm.header, hw)
		add(rm.output, ow)
	}
	if err := r.zeroGenerationPrompt(msgs, on, &ex); err != nil {
		return Example{}, err
	}
	return ex, nil
}

func trained(m Message, ctx context, on TrainOn) bool {
	if m.NoLoss {
		return false
	}
	asst := m.Role == "assistant"
	switch on {
	case LastAssistantMessage:
		return ctx.isLast && asst
	case LastAssistantTurn:
		return asst && ctx.inLastAsstTrn
	case AllAssistantMessages:
		return asst
	case AllMessages, AllTokens:
		return true
	case AllUserAndSystemMessages:
		return m.Role == "user" || m.Role == "system"
	}
	return false
}

// zeroGenerationPrompt is _train_after_the_generation_prompt.
func (r *Renderer) zeroGenerationPrompt(msgs []Message, on TrainOn, ex *Example) error {
	var boundary int
	switch on {
	case LastAssistantMessage:
		boundary = len(msgs) - 1
	case LastAssistantTurn:
		boundary = lastUserIndex(msgs) + 1
	default:
		return nil
	}
	if boundary < 0 || boundary >= len(msgs) || msgs[boundary].Role != "assistant" {
		return nil
	}
	prompt, err := r.GenerationPrompt(msgs[:boundary])
	if err != nil {
		return err
	}
	if len(prompt) > len(ex.Tokens) || !equal(ex.Tokens[:len(prompt)], prompt) {
		if r.disablesThinking {
			return errors.New("qwen3_disable_thinking: the final turn contains reasoning, but this renderer's generation prompt closes the think block; use the qwen3 renderer or remove the reasoning")
		}
		return nil // the cookbook leaves such weights as they are
	}
	for i := range prompt {
		ex.Weights[i] = 0
	}
	return nil
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Datum is what one forward_backward example carries: the model input
// (tokens but the last), the next-token targets and their weights, all N-1
// long (datum_from_model_input_weights).
type Datum struct {
	Input   []int
	Targets []int
	Weights []float32
}

// Datum shifts the example for next-token loss. maxLength > 0 truncates the
// sequence first, from the right; mean divides the weights by their sum so
// that each example counts once whatever its length (the cookbook SFT
// default), and leaves all-zero weights alone.
func (e Example) Datum(maxLength int, mean bool) (Datum, error) {
	n := len(e.Tokens)
	if len(e.Weights) != n {
		return Datum{}, fmt.Errorf("example has %d tokens but %d weights", n, len(e.Weights))
	}
	if maxLength > 0 && n > maxLength {
		n = maxLength
	}
	if n < 2 {
		return Datum{}, fmt.Errorf("example has %d tokens; a datum needs at least 2", n)
	}
	d := Datum{
		Input:   append([]int(nil), e.Tokens[:n-1]...),
		Targets: append([]int(nil), e.Tokens[1:n]...),
		Weights: append([]float32(nil), e.Weights[1:n]...),
	}
	if mean {
		var sum float32
		for _, w := range d.Weights {
			sum += w
		}
		if sum > 0 {
			for i := range d.Weights {
				d.Weights[i] /= sum
			}
		}
	}
	return d, nil
}

// ConversationDatum is the cookbook's conversation_to_datum with its
// defaults: all assistant messages trained, weights averaged per example.
func (r *Renderer) ConversationDatum(msgs []Message, maxLength int) (Datum, error) {
	ex, err := r.Supervised(msgs, AllAssistantMessages)
	if err != nil {
		return Datum{}, err
	}
	return ex.Datum(maxLength, true)
}

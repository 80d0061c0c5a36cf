package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/config"
	"github.com/modelorganisms/pvbuild/internal/inputfile"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// A no-op plan decodes the experiment, keys every target and checks every
// stamp and output against the index; on a sweep of a thousand models most
// of that is work whose answer is known. A plan that finds everything
// fresh is therefore kept as a snapshot (see build.Snapshot) keyed by
// what the keys are computed from besides the artifacts: the program, the
// experiment's bytes and the environment variables it read. The next plan
// with the same key whose stamps and outputs all have their fingerprints
// is that plan; any difference, or any doubt, plans the long way.
//
// A plan is kept only when nothing else entered it: no file the
// experiment names (questions_file), no downloaded data, no training
// settings asked of a provider, and no secret in the environment.

// snapshotFormat changes whenever what a snapshot holds, or what a plan
// is derived from, does.
const snapshotFormat = "plan-snapshot/1"

// planIdentity is what a plan is derived from that the artifacts do not
// hold: the program, the experiment's path and bytes, the provider kinds,
// and the value of every environment variable the experiment read. ok is
// false when one of them cannot be named, or is a secret that is set.
func planIdentity(env Env, src []byte, vars []string) (in build.Inputs, ok bool) {
	exe, err := env.executable()
	if err != nil {
		return nil, false
	}
	prog, ok := build.Identity(exe)
	if !ok {
		return nil, false
	}
	path, err := filepath.Abs(env.Experiment)
	if err != nil {
		return nil, false
	}
	in.Add("format", snapshotFormat)
	in.Add("program", exe+" "+prog)
	in.Add("experiment", path)
	in.Add("experiment_sha256", build.Hash(src))
	kinds := make([]string, 0, len(env.Providers))
	for name, k := range env.Providers {
		kinds = append(kinds, name+"="+fmt.Sprintf("%T", k))
	}
	slices.Sort(kinds)
	in.Add("provider_kinds", strings.Join(kinds, ","))
	getenv := env.getenv()
	for _, name := range vars {
		v := getenv(name)
		if v != "" && secretName(name) {
			// Its value would have to be kept, if only as a hash, to
			// know it unchanged: plan the long way instead.
			return nil, false
		}
		in.Add("env/"+name, v)
	}
	return in, true
}

// secretName says whether an environment variable's name suggests a
// credential.
func secretName(name string) bool {
	n := strings.ToUpper(name)
	for _, word := range []string{"KEY", "TOKEN", "SECRET", "PASS", "CREDENTIAL", "AUTH"} {
		if strings.Contains(n, word) {
			return true
		}
	}
	return false
}

// executable is the program's file: the running one, unless a test names
// another.
func (env Env) executable() (string, error) {
	if env.program != "" {
		return env.program, nil
	}
	return os.Executable()
}

func (env Env) getenv() func(string) string {
	if env.Getenv != nil {
		return env.Getenv
	}
	return os.Getenv
}

// envRecorder is a Getenv that remembers which variables were read: the
// experiment's env() calls, and what its providers read.
type envRecorder struct {
	getenv func(string) string
	mu     sync.Mutex
	names  map[string]bool
}

func (r *envRecorder) Getenv(name string) string {
	r.mu.Lock()
	r.names[name] = true
	r.mu.Unlock()
	return r.getenv(name)
}

func (r *envRecorder) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(func(yield func(string) bool) {
		for n := range r.names {
			if !yield(n) {
				return
			}
		}
	})
}

// snapshotEligible says whether a plan of p is derived from its identity
// and its artifacts alone.
func (p *Pipeline) snapshotEligible() bool {
	if p.identity == nil {
		return false
	}
	if _, ok := p.opts.Source.(SampleSource); !ok {
		return false
	}
	if _, ok := p.exp.Providers[p.exp.Training.Provider].Config.(provider.TrainingSettings); ok {
		return false
	}
	for _, t := range p.exp.Traits {
		if t.QuestionsFile != "" {
			return false
		}
	}
	return true
}

// snapshotter is the part of a cache that keeps snapshots.
type snapshotter interface {
	SaveSnapshot(data []byte, stamps []*build.Stamp) (bool, error)
}

// keep saves what the run learnt, then a snapshot of a plan that found
// every target fresh, which relies on the facts the flush makes durable.
// Both are only a saving for the next run: failing fails nothing.
func (r *run) keep(pl *Plan) {
	r.p.flushCache()
	r.saveSnapshot(pl)
}

func (r *run) saveSnapshot(pl *Plan) {
	p := r.p
	c, ok := p.cache.(snapshotter)
	if !ok || !p.snapshotEligible() {
		return
	}
	if stale, _ := pl.Stale(); stale > 0 {
		return
	}
	stamps := make([]*build.Stamp, 0, len(p.targets))
	var tables string
	for _, t := range p.targets {
		st := r.states[t]
		if st == nil || !st.fresh || st.stamp == nil {
			return
		}
		stamps = append(stamps, st.stamp)
		if t.id == resultsID {
			tables = st.stamp.Outputs[tablesOut]
		}
	}
	sn := planSnapshot{key: p.identity.Key(), vars: p.envNames, plan: pl, tables: tables, free: p.free()}
	_, _ = c.SaveSnapshot(sn.marshal(), stamps)
}

// free says whether every provider the experiment uses is free: connecting
// to them can then not fail for want of a key, and a no-op results need
// not connect.
func (p *Pipeline) free() bool {
	for _, name := range []string{p.exp.Training.Provider, p.exp.Evaluation.Provider, p.exp.Evaluation.JudgeProvider} {
		if pr, ok := p.exp.Providers[name].Config.(provider.Pricing); !ok || !pr.Free() {
			return false
		}
	}
	return true
}

// planSnapshot is what a snapshot of a fresh plan holds.
type planSnapshot struct {
	key    string   // of the plan's identity
	vars   []string // the environment variables the experiment read
	plan   *Plan
	tables string // SHA-256 of the tables the results target wrote
	free   bool   // see Pipeline.free
}

// marshal writes the snapshot's data:
//
//	key <hex>
//	env <quoted name> ...
//	protocol <quoted summary>
//	tables <sha256>
//	free <bool>
//	<stage letter> <target>
func (sn planSnapshot) marshal() []byte {
	var b bytes.Buffer
	b.WriteString("key " + sn.key + "\nenv")
	for _, v := range sn.vars {
		b.WriteString(" " + strconv.Quote(v))
	}
	b.WriteString("\nprotocol " + strconv.Quote(sn.plan.Protocol) + "\n")
	b.WriteString("tables " + sn.tables + "\nfree " + strconv.FormatBool(sn.free) + "\n")
	pl := sn.plan
	for _, part := range []struct {
		letter string
		steps  []Step
	}{{"d", pl.Datasets}, {"t", pl.Train}, {"e", pl.Evals}, {"r", []Step{pl.Results}}, {"p", pl.Reports}} {
		for _, s := range part.steps {
			b.WriteString(part.letter + " " + s.Target + "\n")
		}
	}
	return b.Bytes()
}

// unmarshalPlanSnapshot reads marshal's header; steps is the rest, for
// parseSteps. ok is false on any damage.
func unmarshalPlanSnapshot(data []byte) (sn planSnapshot, steps string, ok bool) {
	text := string(data)
	field := func(word string) (string, bool) {
		var line string
		line, text, _ = strings.Cut(text, "\n")
		return strings.CutPrefix(line, word)
	}
	var rest, protocol, free string
	var err error
	if sn.key, ok = field("key "); !ok {
		return sn, "", false
	}
	if rest, ok = field("env"); !ok {
		return sn, "", false
	}
	for rest != "" {
		rest = strings.TrimPrefix(rest, " ")
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return sn, "", false
		}
		v, _ := strconv.Unquote(q)
		sn.vars = append(sn.vars, v)
		rest = rest[len(q):]
	}
	if protocol, ok = field("protocol "); !ok {
		return sn, "", false
	}
	sn.plan = &Plan{}
	if sn.plan.Protocol, err = strconv.Unquote(protocol); err != nil {
		return sn, "", false
	}
	if sn.tables, ok = field("tables "); !ok {
		return sn, "", false
	}
	if free, ok = field("free "); !ok {
		return sn, "", false
	}
	if sn.free, err = strconv.ParseBool(free); err != nil {
		return sn, "", false
	}
	return sn, text, true
}

// parseSteps fills pl from marshal's step lines, all fresh; ok is false
// on any damage.
func parseSteps(pl *Plan, text string) bool {
	// Counted first: a sweep's plan is tens of thousands of steps.
	count := func(letter string) int {
		n := strings.Count(text, "\n"+letter+" ")
		if strings.HasPrefix(text, letter+" ") {
			n++
		}
		return n
	}
	pl.Datasets, pl.Train = make([]Step, 0, count("d")), make([]Step, 0, count("t"))
	pl.Evals, pl.Reports = make([]Step, 0, count("e")), make([]Step, 0, count("p"))
	results := 0
	for text != "" {
		var line string
		line, text, _ = strings.Cut(text, "\n")
		letter, target, _ := strings.Cut(line, " ")
		s := Step{Target: target, Fresh: true}
		switch {
		case target == "":
			return false
		case letter == "d":
			pl.Datasets = append(pl.Datasets, s)
		case letter == "t":
			pl.Train = append(pl.Train, s)
		case letter == "e":
			pl.Evals = append(pl.Evals, s)
		case letter == "r":
			pl.Results = s
			results++
		case letter == "p":
			pl.Reports = append(pl.Reports, s)
		default:
			return false
		}
	}
	return results == 1
}

// LoadPlan is Load, then Plan: the plan a snapshot kept when its key and
// every file it was derived from are unchanged; else the long way, which
// keeps a new snapshot when it finds everything fresh.
func LoadPlan(ctx context.Context, env Env) (*Plan, error) {
	if pl := snapshotPlan(env); pl != nil {
		return pl, nil
	}
	p, err := Load(ctx, env)
	if err != nil {
		return nil, err
	}
	return p.Plan(ctx)
}

// snapshotPlan is the snapshot's plan, or nil.
func snapshotPlan(env Env) *Plan {
	sn, ok := currentSnapshot(&build.Store{Root: env.Artifacts}, env)
	if !ok {
		return nil
	}
	return sn.plan
}

// currentSnapshot is the store's snapshot when its key is the current
// one and every file it was derived from is unchanged.
func currentSnapshot(store *build.Store, env Env) (planSnapshot, bool) {
	saved := store.LoadSnapshot()
	if saved == nil {
		return planSnapshot{}, false
	}
	sn, steps, ok := unmarshalPlanSnapshot(saved.Data)
	if !ok {
		return planSnapshot{}, false
	}
	src, err := inputfile.Read(env.Experiment, config.MaxExperimentBytes)
	if err != nil {
		return planSnapshot{}, false // the long way says what is wrong with it
	}
	if id, ok := planIdentity(env, src, sn.vars); !ok || id.Key() != sn.key {
		return planSnapshot{}, false
	}
	// The steps are read, and listed, while the files are stat'ed.
	unchanged := make(chan bool, 1)
	go func() { unchanged <- store.Unchanged(saved) }()
	parsed := parseSteps(sn.plan, steps)
	if parsed {
		sn.plan.Text()
	}
	if !<-unchanged || !parsed {
		return planSnapshot{}, false
	}
	return sn, true
}

// SnapshotResults is a no-op results from the snapshot: the tables the
// fresh results target wrote, printed without decoding the experiment or
// connecting to a provider. ok is false when the snapshot is not current,
// a provider in use is paid (connecting could refuse the run for want of
// a key), or the store is locked: results then takes the long way, which
// says so.
func SnapshotResults(env Env) (out *Outcome, ok bool) {
	store := &build.Store{Root: env.Artifacts}
	lock, err := store.Lock()
	if err != nil {
		return nil, false
	}
	defer lock.Unlock()
	sn, ok := currentSnapshot(store, env)
	if !ok || !sn.free || sn.tables == "" {
		return nil, false
	}
	tables, err := os.ReadFile(store.Path(tablesOut))
	if err != nil || build.Hash(tables) != sn.tables {
		return nil, false
	}
	if env.Log != nil {
		fmt.Fprintln(env.Log, "nothing to do: every target is fresh")
	}
	return &Outcome{Tables: tables}, true
}

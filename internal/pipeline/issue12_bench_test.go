package pipeline

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/build"
)

// BenchmarkIssue12 measures, in one run, the figures issue 12 asks for and
// prints them as a table with their ratios:
//
//	go test -run '^$' -bench '^BenchmarkIssue12$' -benchtime 5x -count 1 -timeout 60m ./internal/pipeline
//
// no-op plan and no-op results of the shipped and the 1,000 x 10 experiment
// in process, the first plan after artifacts/ is copied elsewhere (a CI
// cache restore), the whole-command `plan` of a compiled mage binary, a cold
// build of 1,000 x 10 (once: it is the no-op figures' setup), evaluation
// throughput at L = 50 ms and 200 ms, and ninja's no-op on an equivalent
// build.ninja over the same outputs. In process, garbage is collected at
// the commands' pace (CommandGCPercent).
//
// Each timed figure is min / median / max over every iteration of its
// sub-benchmark, at least ISSUE12_RUNS (default 5), and until it has
// taken half a second (at most 200 runs). -short leaves out the
// 1,000 x 10 experiment; ISSUE12_SKIP, a comma-separated list of large,
// throughput, mage and ninja, leaves out those parts. Without ninja on PATH
// its part is skipped with a message. The in-process no-op figures are the
// steady state: a plan after a build re-hashes files written within the
// index's racy margin and rewrites the index, so one untimed no-op runs
// before the timed ones.
func BenchmarkIssue12(b *testing.B) {
	asCommand(b) // in process as in the mage binary
	r := &issue12{minRuns: 5}
	if v := os.Getenv("ISSUE12_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("ISSUE12_RUNS=%q: want a positive count", v)
		}
		r.minRuns = n
	}
	for _, s := range strings.Split(os.Getenv("ISSUE12_SKIP"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			if !slices.Contains([]string{"large", "throughput", "mage", "ninja"}, s) {
				b.Fatalf("ISSUE12_SKIP: %q is none of large, throughput, mage, ninja", s)
			}
			r.skip = append(r.skip, s)
		}
	}
	if testing.Short() {
		r.skip = append(r.skip, "large")
	}
	if !r.skipped("ninja") {
		if _, err := exec.LookPath("ninja"); err != nil {
			r.note("ninja is not on PATH (apt-get install ninja-build): its no-op and the ratios to it are skipped")
			b.Log(r.notes[len(r.notes)-1])
			r.skip = append(r.skip, "ninja")
		}
	}
	if !r.skipped("mage") {
		r.mage = compileMage(b)
	}

	tmp := os.TempDir()
	r.values = append(r.values, value{"workspaces", fmt.Sprintf("in %s, on %s (TMPDIR sets where)", tmp, filesystemOf(tmp))})
	if fs := filesystemOf(tmp); fs == "tmpfs" {
		r.note("the workspaces are on a tmpfs, where syncs cost nothing: for a disk's figures, set TMPDIR to a directory on one")
	}
	r.experiment(b, "shipped", shipped(b), false)
	if !r.skipped("large") {
		r.experiment(b, "1000x10", largeExperiment(1000, 10), true)
	}
	if !r.skipped("throughput") {
		r.throughput(b)
	}
	r.print(os.Stdout)
}

// issue12 collects the figures of one run of BenchmarkIssue12.
type issue12 struct {
	minRuns int
	skip    []string
	mage    string // compiled mage binary
	figures []figure
	values  []value // figures that are not timings
	notes   []string
}

type figure struct {
	name string
	runs []time.Duration // wall time
	cpu  []time.Duration // CPU time, user and system, of this process and its children
}

type value struct{ name, text string }

func (r *issue12) skipped(part string) bool { return slices.Contains(r.skip, part) }

func (r *issue12) note(s string) { r.notes = append(r.notes, s) }

func (r *issue12) find(name string) *figure {
	for i := range r.figures {
		if r.figures[i].name == name {
			return &r.figures[i]
		}
	}
	return nil
}

// measure runs a sub-benchmark that times run on each iteration, with
// prep (untimed) before each, and records its iterations as a figure.
func (r *issue12) measure(b *testing.B, name string, prep, run func(b *testing.B)) {
	b.Run(strings.ReplaceAll(name, " ", "_"), func(b *testing.B) {
		var runs, cpu []time.Duration
		once := func() {
			if prep != nil {
				b.StopTimer()
				prep(b)
				b.StartTimer()
			}
			start, startCPU := time.Now(), cpuTime()
			run(b)
			runs = append(runs, time.Since(start))
			cpu = append(cpu, cpuTime()-startCPU)
		}
		for b.Loop() {
			once()
		}
		// A sub-millisecond figure over five runs is mostly noise: each
		// runs until it has taken half a second too, up to 200 runs.
		var total time.Duration
		for _, d := range runs {
			total += d
		}
		for len(runs) < r.minRuns || (total < 500*time.Millisecond && len(runs) < 200) {
			once()
			total += runs[len(runs)-1]
		}
		lo, med, hi := spread(runs)
		b.ReportMetric(ms(lo), "min-ms")
		b.ReportMetric(ms(med), "median-ms")
		b.ReportMetric(ms(hi), "max-ms")
		_, medCPU, _ := spread(cpu)
		b.ReportMetric(ms(medCPU), "median-cpu-ms")
		r.figures = append(r.figures, figure{name, runs, cpu})
	})
}

func spread(runs []time.Duration) (lo, med, hi time.Duration) {
	s := slices.Sorted(slices.Values(runs))
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[0], med, s[len(s)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// experiment builds hcl once and measures its no-op figures.
func (r *issue12) experiment(b *testing.B, name, hcl string, timeBuild bool) {
	w := newWorkspace(b, hcl)
	var log bytes.Buffer
	syncDisks() // the writeback of what ran before is not this build's
	start, startCPU := time.Now(), cpuTime()
	p := connected(b, w, &log)
	out, err := p.Results(context.Background())
	if err != nil {
		b.Fatalf("%s: build: %v\n%s", name, err, log.String())
	}
	p.Close()
	if timeBuild {
		r.figures = append(r.figures, figure{"cold build " + name, []time.Duration{time.Since(start)}, []time.Duration{cpuTime() - startCPU}})
	}
	r.values = append(r.values, value{"targets " + name, fmt.Sprintf("%d (%d rebuilt by the build)", len(p.targets), out.Rebuilt)})
	settle(w) // the timed no-ops are the steady state

	r.measure(b, "no-op plan "+name, nil, func(b *testing.B) { noopPlan(b, w) })
	r.measure(b, "no-op results "+name, nil, func(b *testing.B) { noopResults(b, w, &log) })
	// The same plan without its snapshot: decode, key and check every
	// target (and keep the snapshot again).
	r.measure(b, "no-op plan, long way, "+name, nil, func(b *testing.B) { longPlan(b, w) })

	// A CI cache restore: artifacts/ copied to a new place (new inodes and
	// times, so the index vouches for nothing), then the first plan.
	var restored *workspace
	r.measure(b, "CI-restore plan "+name, func(b *testing.B) {
		if restored != nil {
			os.RemoveAll(restored.dir)
		}
		restored = newWorkspace(b, hcl)
		if err := os.CopyFS(restored.artifacts, os.DirFS(w.artifacts)); err != nil {
			b.Fatal(err)
		}
	}, func(b *testing.B) { noopPlan(b, restored) })

	if r.mage != "" {
		r.mageCommand(b, "plan", name, w, "everything is fresh")
		r.mageCommand(b, "results", name, w, "")
	}
	if !r.skipped("ninja") {
		dir := ninjaTree(b, w)
		r.measure(b, "ninja no-op "+name, nil, func(b *testing.B) { ninjaNoop(b, dir) })
	}
}

// throughput runs BenchmarkEvaluationThroughput (L = 50 ms and 200 ms) in
// a child process of this test binary, with this run's -benchtime, and
// reads back its metrics: testing.Benchmark cannot run inside a benchmark.
func (r *issue12) throughput(b *testing.B) {
	args := []string{"-test.run=^$", "-test.bench=^BenchmarkEvaluationThroughput$", "-test.count=1"}
	if f := flag.Lookup("test.benchtime"); f != nil {
		args = append(args, "-test.benchtime="+f.Value.String())
	}
	cmd := exec.Command(os.Args[0], args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.note(fmt.Sprintf("BenchmarkEvaluationThroughput failed: %v\n%s", err, tail(out)))
		return
	}
	found := false
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) < 2 || !strings.HasPrefix(fields[0], "BenchmarkEvaluationThroughput/") {
			continue
		}
		found = true
		name := strings.TrimPrefix(fields[0], "BenchmarkEvaluationThroughput/")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i] // the -GOMAXPROCS suffix
			}
		}
		metrics := map[string]string{}
		for i := 2; i+1 < len(fields); i += 2 {
			metrics[fields[i+1]] = fields[i]
		}
		r.values = append(r.values, value{"throughput " + name, fmt.Sprintf("%s calls/s, %s of C/L (%s runs)",
			metrics["calls/s"], metrics["fraction_of_C/L"], fields[1])})
	}
	if !found {
		r.note("BenchmarkEvaluationThroughput printed no figures:\n" + string(tail(out)))
	}
}

// noopPlan is a no-op `mage plan` in process, as the target runs it: from
// the snapshot when it holds, else the long way.
func noopPlan(b *testing.B, w *workspace) {
	pl, err := LoadPlan(context.Background(), w.env(&bytes.Buffer{}))
	if err != nil {
		b.Fatal(err)
	}
	if stale, _ := pl.Stale(); stale != 0 {
		b.Fatalf("%d targets stale after a full build", stale)
	}
}

// longPlan is a no-op plan the long way: decode the file, check every
// target.
func longPlan(b *testing.B, w *workspace) {
	p, err := Load(context.Background(), w.env(&bytes.Buffer{}))
	if err != nil {
		b.Fatal(err)
	}
	pl, err := p.Plan(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if stale, _ := pl.Stale(); stale != 0 {
		b.Fatalf("%d targets stale after a full build", stale)
	}
}

// noopResults is a no-op `mage results` in process, as the target runs
// it: from the snapshot when it holds; else decode, connect, check every
// target, read what the results target wrote.
func noopResults(b *testing.B, w *workspace, log *bytes.Buffer) {
	log.Reset()
	if out, ok := SnapshotResults(w.env(log)); ok {
		if len(out.Tables) == 0 {
			b.Fatal("no-op results from the snapshot printed no tables")
		}
		return
	}
	p := connected(b, w, log)
	defer p.Close()
	out, err := p.Results(context.Background())
	if err != nil || out.Rebuilt != 0 || len(out.Tables) == 0 {
		b.Fatalf("no-op results: rebuilt %v, %d bytes of tables, %v\n%s", out.Rebuilt, len(out.Tables), err, log.String())
	}
}

// compileMage compiles the magefile into a binary, as `go run mage.go
// -compile` does for a CI image.
func compileMage(b *testing.B) string {
	bin := filepath.Join(b.TempDir(), "pvbuild-mage")
	cmd := exec.Command("go", "run", "mage.go", "-compile", bin)
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go run mage.go -compile: %v\n%s", err, out)
	}
	return bin
}

// mageCommand times the whole command `mage <target>` of the compiled
// binary in w's directory, its stdout (for plan, a line a target) to a
// file; want is what a no-op prints.
func (r *issue12) mageCommand(b *testing.B, target, name string, w *workspace, want string) {
	outPath := filepath.Join(b.TempDir(), target+".out")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EXPERIMENT=") {
			env = append(env, kv)
		}
	}
	run := func(b *testing.B) {
		f, err := os.Create(outPath)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		cmd := exec.Command(r.mage, target)
		cmd.Dir, cmd.Env, cmd.Stdout = w.dir, env, f
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("mage %s: %v\n%s", target, err, stderr.String())
		}
	}
	run(b) // untimed: the mage binary's first run in this directory
	if out, _ := os.ReadFile(outPath); !bytes.Contains(out, []byte(want)) {
		b.Fatalf("mage %s after a full build is not a no-op:\n%s", target, tail(out))
	}
	r.measure(b, "mage "+target+" "+name, nil, run)
}

func tail(b []byte) []byte {
	if len(b) > 2000 {
		return b[len(b)-2000:]
	}
	return b
}

// ninjaTree writes a build.ninja equivalent to w's built graph: an edge
// per target, producing the outputs its stamp records (same paths, copied
// from a pristine copy of the artifacts, so byte-identical), with restat.
// Its inputs are its dependencies' outputs, its dataset's for a training,
// the provider state its stamp records and, for targets that depend on no
// other, the experiment file. It is built once, so that .ninja_log knows
// every output, and the next run is a no-op.
func ninjaTree(b testing.TB, w *workspace) string {
	root := b.TempDir()
	pristine, dir := filepath.Join(root, "pristine"), filepath.Join(root, "out")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	write, err := ninjaFile(w.load(), &build.Store{Root: w.artifacts})
	if err != nil {
		b.Fatal(err)
	}
	// The sources: provider state and the experiment file, in place.
	copyFile(b, w.hcl, filepath.Join(dir, "experiment.hcl"))
	for _, f := range write.sources {
		copyFile(b, filepath.Join(w.artifacts, f), filepath.Join(dir, f))
	}
	for _, f := range write.outputs {
		copyFile(b, filepath.Join(w.artifacts, f), filepath.Join(pristine, f))
	}
	if err := os.WriteFile(filepath.Join(dir, "build.ninja"), write.file, 0o644); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("ninja", "-C", dir).CombinedOutput(); err != nil {
		b.Fatalf("ninja build: %v\n%s", err, tail(out))
	}
	for _, f := range write.outputs[:min(len(write.outputs), 100)] {
		a, _ := os.ReadFile(filepath.Join(pristine, f))
		c, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || !bytes.Equal(a, c) {
			b.Fatalf("ninja's %s is not the artifact (%v)", f, err)
		}
	}
	ninjaNoop(b, dir) // untimed: a first no-op may rewrite .ninja_log
	return dir
}

type ninjaBuild struct {
	file             []byte
	outputs, sources []string // relative paths
}

// ninjaFile is the build.ninja of p's graph over the stamps in store.
func ninjaFile(p *Pipeline, store *build.Store) (*ninjaBuild, error) {
	var nb ninjaBuild
	var f bytes.Buffer
	f.WriteString("# The graph of a pvbuild experiment: an edge a target, copying its outputs.\n")
	f.WriteString("rule copy\n  command = $cmd\n  description = $target\n  restat = 1\n\n")
	outputs := map[string][]string{} // target -> its outputs, sorted
	owner := map[string]string{}     // output -> target
	sources := map[string]bool{}
	for _, t := range p.targets {
		st, err := store.Stamp(t.id)
		if err != nil {
			return nil, err
		}
		if st == nil || len(st.Outputs) == 0 {
			return nil, fmt.Errorf("%s has no stamp with outputs: build the experiment first", t.id)
		}
		outs := slices.Sorted(maps.Keys(st.Outputs))
		for _, o := range outs {
			if prev, ok := owner[o]; ok {
				return nil, fmt.Errorf("%s is an output of both %s and %s", o, prev, t.id)
			}
			owner[o] = t.id
		}
		outputs[t.id] = outs
		var in []string
		for _, d := range t.deps {
			in = append(in, outputs[d.id]...)
		}
		if t.stage == stageTrain {
			in = append(in, outputs[datasetID(t.model.Name)]...)
		}
		if len(in) == 0 {
			in = append(in, "experiment.hcl")
		}
		var implicit []string
		for _, name := range slices.Sorted(maps.Keys(st.Files)) {
			implicit = append(implicit, name)
			sources[name] = true
		}
		var cmd []string
		for _, o := range outs {
			cmd = append(cmd, "cp ../pristine/"+shellQuote(o)+" "+shellQuote(o))
		}
		f.WriteString("build")
		for _, o := range outs {
			f.WriteString(" " + ninjaEscape(o))
		}
		f.WriteString(": copy")
		for _, i := range in {
			f.WriteString(" " + ninjaEscape(i))
		}
		if len(implicit) > 0 {
			f.WriteString(" |")
			for _, i := range implicit {
				f.WriteString(" " + ninjaEscape(i))
			}
		}
		fmt.Fprintf(&f, "\n  cmd = %s\n  target = %s\n", ninjaEscapeValue(strings.Join(cmd, " && ")), ninjaEscapeValue(t.id))
		nb.outputs = append(nb.outputs, outs...)
	}
	for s := range sources {
		if _, ok := owner[s]; ok {
			return nil, fmt.Errorf("%s is both provider state and an output", s)
		}
		nb.sources = append(nb.sources, s)
	}
	slices.Sort(nb.sources)
	nb.file = f.Bytes()
	return &nb, nil
}

// ninjaEscape escapes a path in a build line; ninjaEscapeValue a variable's value.
func ninjaEscape(s string) string {
	return strings.NewReplacer("$", "$$", " ", "$ ", ":", "$:", "\n", "$\n").Replace(s)
}

func ninjaEscapeValue(s string) string { return strings.ReplaceAll(s, "$", "$$") }

func shellQuote(s string) string {
	if strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func copyFile(b testing.TB, from, to string) {
	data, err := os.ReadFile(from)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		b.Fatal(err)
	}
}

// ninjaNoop runs ninja in dir, which must have nothing to do.
func ninjaNoop(b testing.TB, dir string) {
	out, err := exec.Command("ninja", "-C", dir).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("no work to do")) {
		b.Fatalf("ninja no-op: %v\n%s", err, tail(out))
	}
}

// print writes the figures and their ratios.
func (r *issue12) print(w io.Writer) {
	fmt.Fprintf(w, "\nIssue 12 figures (wall time, at least %d runs; CPU is user + system, with children's):\n", r.minRuns)
	fmt.Fprintf(w, "| %-36s | %10s | %10s | %10s | %4s | %10s |\n", "figure", "min", "median", "max", "runs", "median CPU")
	dash := func(n int) string { return strings.Repeat("-", n) }
	fmt.Fprintf(w, "|%s|%s|%s|%s|%s|%s|\n", dash(38), dash(12), dash(12), dash(12), dash(6), dash(12))
	for _, f := range r.figures {
		lo, med, hi := spread(f.runs)
		_, cpu, _ := spread(f.cpu)
		fmt.Fprintf(w, "| %-36s | %10s | %10s | %10s | %4d | %10s |\n", f.name, round(lo), round(med), round(hi), len(f.runs), round(cpu))
	}
	for _, v := range r.values {
		fmt.Fprintf(w, "%s: %s\n", v.name, v.text)
	}
	fmt.Fprintln(w, "\nRatios of medians (the goal in brackets):")
	ratio := func(a, b, goal string) {
		fa, fb := r.find(a), r.find(b)
		if fa == nil || fb == nil {
			return
		}
		_, ma, _ := spread(fa.runs)
		_, mb, _ := spread(fb.runs)
		_, ca, _ := spread(fa.cpu)
		_, cb, _ := spread(fb.cpu)
		cpu := ""
		if cb > 0 {
			cpu = fmt.Sprintf(" (CPU %.2f)", float64(ca)/float64(cb))
		}
		fmt.Fprintf(w, "  %s / %s = %.2f%s%s\n", a, b, float64(ma)/float64(mb), cpu, goal)
	}
	absolute := func(a string, limit time.Duration) {
		if f := r.find(a); f != nil {
			_, m, _ := spread(f.runs)
			fmt.Fprintf(w, "  %s = %s (goal: under %v; %.2f of it)\n", a, round(m), limit, float64(m)/float64(limit))
		}
	}
	for _, e := range []string{"shipped", "1000x10"} {
		ratio("no-op results "+e, "no-op plan "+e, " (goal: at most 1.2)")
		ratio("mage results "+e, "mage plan "+e, " (both whole commands)")
		ratio("no-op plan, long way, "+e, "no-op plan "+e, "")
		ratio("CI-restore plan "+e, "no-op plan "+e, "")
		ratio("no-op plan "+e, "ninja no-op "+e, " (goal: below 1, ideally 0.5)")
		ratio("mage plan "+e, "ninja no-op "+e, " (both whole commands)")
	}
	absolute("no-op plan shipped", 5*time.Millisecond)
	absolute("mage plan 1000x10", 100*time.Millisecond)
	absolute("mage results 1000x10", 100*time.Millisecond)
	for _, n := range r.notes {
		fmt.Fprintln(w, "note: "+n)
	}
}

func round(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	default:
		return d.Round(10 * time.Microsecond).String()
	}
}

// The build.ninja BenchmarkIssue12 compares with has an edge per target,
// each producing exactly the outputs its stamp records, and, with ninja
// installed, builds those outputs byte for byte and then has nothing to do.
func TestIssue12NinjaFile(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t, shipped(t))
	shippedRun(t, w)
	p := w.load()
	nb, err := ninjaFile(p, &build.Store{Root: w.artifacts})
	if err != nil {
		t.Fatal(err)
	}
	edges := 0
	for line := range strings.Lines(string(nb.file)) {
		if strings.HasPrefix(line, "build ") {
			edges++
		}
	}
	if edges != len(p.targets) {
		t.Errorf("%d edges for %d targets", edges, len(p.targets))
	}
	store := &build.Store{Root: w.artifacts}
	want := 0
	for _, tg := range p.targets {
		st, err := store.Stamp(tg.id)
		if err != nil || st == nil {
			t.Fatalf("stamp of %s: %v", tg.id, err)
		}
		want += len(st.Outputs)
	}
	if len(nb.outputs) != want {
		t.Errorf("%d outputs in build.ninja, %d in the stamps", len(nb.outputs), want)
	}
	for _, needle := range []string{"restat = 1", "build eval_results.json results.txt: copy evals/", "cp ../pristine/summary.md summary.md"} {
		if !strings.Contains(string(nb.file), needle) {
			t.Errorf("build.ninja lacks %q", needle)
		}
	}
	if _, err := exec.LookPath("ninja"); err != nil {
		t.Skip("ninja is not on PATH: build.ninja is not run")
	}
	ninjaTree(t, w)
}

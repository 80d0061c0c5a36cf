package htmlreport_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/modelorganisms/pvbuild/internal/htmlreport"
	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/report"
	"github.com/modelorganisms/pvbuild/internal/report/reporttest"
)

// chromium finds Debian's chromium, or skips: the browser test needs one.
func chromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Skip("no chromium at /usr/bin/chromium or on PATH; install it (apt-get install chromium) to run the browser test")
	return ""
}

// browse opens url in a fresh headless chromium and records every request
// the page makes and every console error, exception and browser log error.
func browse(t *testing.T, url string) (ctx context.Context, requests func() []string, problems func() []string) {
	t.Helper()
	bin := chromium(t)
	var mu sync.Mutex
	var reqs, probs []string
	record := func(list *[]string, s string) {
		mu.Lock()
		defer mu.Unlock()
		*list = append(*list, s)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox, // root in a container has no user namespace for the sandbox
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	bctx, cancelTab := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			record(&reqs, ev.Request.URL)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				record(&probs, fmt.Sprintf("console.%s: %v", ev.Type, ev.Args))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			record(&probs, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				record(&probs, fmt.Sprintf("browser log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	}))
	// Registered after TempDir, so the browser is gone before its profile is removed.
	t.Cleanup(func() { cancelTab(); cancelAlloc(); cancel() })
	if err := chromedp.Do(bctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	snapshot := func(list *[]string) func() []string {
		return func() []string {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(*list)
		}
	}
	return bctx, snapshot(&reqs), snapshot(&probs)
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestBrowser(t *testing.T) {
	chromium(t)
	t.Parallel() // each page in its own chromium: they start at once
	e := reporttest.Experiment(t)
	hostile(&e)
	// One sample the judge did not answer, shown as such.
	ev := &e.Evals[0]
	ev.Samples[3].Score = nil
	var scores []*float64
	for _, s := range ev.Samples {
		scores = append(scores, s.Score)
	}
	ev.Metric = judge.Summarise(scores)
	// Its answers judged for coherence too, one without an answer.
	var coh []*float64
	for i := range ev.Samples {
		s := &ev.Samples[i]
		s.CoherenceCall = &report.Call{}
		if i != 1 {
			v := float64(15 * (i + 1))
			s.Coherence = &v
		}
		coh = append(coh, s.Coherence)
	}
	ev.Coherence = &report.Coherence{Prompt: "{question} {answer}", Threshold: 50, Metric: judge.Summarise(coh)}

	page, err := htmlreport.Render(e)
	if err != nil {
		t.Fatal(err)
	}
	// Researchers open the file from disk; CI may serve it.
	tests := []struct {
		name  string
		serve func(t *testing.T) string
	}{
		{"file", func(t *testing.T) string {
			name := filepath.Join(t.TempDir(), "report.html")
			if err := os.WriteFile(name, page, 0o644); err != nil {
				t.Fatal(err)
			}
			return "file://" + name
		}},
		{"http", func(t *testing.T) string {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/report.html" {
					http.NotFound(w, r)
					return
				}
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.Write(page)
			}))
			t.Cleanup(srv.Close)
			return srv.URL + "/report.html"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkPage(t, e, tc.serve(t))
		})
	}
}

// checkPage clicks through the report at url: every tab shows its own panel
// and chart, the explorer shows every sample as text, nothing runs that the
// page did not bring, and nothing is fetched but the page.
func checkPage(t *testing.T, e report.Experiment, url string) {
	ev := e.Evals[0]
	ctx, requests, problems := browse(t, url)
	shots := t.TempDir()

	if got := eval[string](t, ctx, `document.title`); got != e.Title {
		t.Errorf("title %q, want %q", got, e.Title)
	}

	type tabState struct {
		Selected string   `json:"selected"`
		Shown    []string `json:"shown"`
		Panel    string   `json:"panel"`
		Lines    int      `json:"lines"`
		Points   int      `json:"points"`
		Titled   int      `json:"titled"`
		ErrBars  int      `json:"errbars"`
		SVGWidth float64  `json:"svgWidth"`
		Rows     int      `json:"rows"`
		CohRows  int      `json:"cohRows"`
		CohCells []string `json:"cohCells"`
	}
	tabs := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('[role="tab"]'), t => t.id)`)
	traits := e.TrainedTraits()
	if len(tabs) != len(traits)+2 {
		t.Fatalf("tabs %q for traits %q", tabs, traits)
	}
	summaryRows := 0
	for _, s := range report.Summaries(e) {
		summaryRows += len(s.Rows)
	}
	for i, id := range tabs {
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID(id))); err != nil {
			t.Fatalf("click %s: %v", id, err)
		}
		st := eval[tabState](t, ctx, `(() => {
			const tab = document.getElementById(`+jsString(id)+`);
			const panel = document.getElementById(tab.getAttribute("aria-controls"));
			const svg = panel.querySelector("svg");
			return {
				selected: tab.getAttribute("aria-selected"),
				shown: Array.from(document.querySelectorAll('[role="tabpanel"]')).filter(p => p.getBoundingClientRect().height > 0).map(p => p.id),
				panel: panel.id,
				lines: panel.querySelectorAll("svg path.line").length,
				points: panel.querySelectorAll("svg .point").length,
				titled: Array.from(panel.querySelectorAll("svg .point > title"), t => t.textContent).filter(s => /: \d+\.\d\d ± \d+\.\d\d, N=\d+/.test(s)).length,
				errbars: panel.querySelectorAll("svg line.err").length,
				svgWidth: svg ? svg.getBoundingClientRect().width : 0,
				rows: panel.querySelectorAll("table.summary:not(.coherence) tbody tr").length,
				cohRows: panel.querySelectorAll("table.coherence tbody tr").length,
				cohCells: Array.from(panel.querySelectorAll("table.coherence td .coh"), e => e.textContent),
			};
		})()`)
		if st.Selected != "true" || !slices.Equal(st.Shown, []string{st.Panel}) {
			t.Errorf("after clicking %s: selected %s, panels shown %q", id, st.Selected, st.Shown)
		}
		switch {
		case i < len(traits):
			c := e.Chart(traits[i])
			lines, points, bars := 0, 0, 0
			for _, l := range c.Lines {
				n := 0
				for _, p := range l.Points {
					if p.Plotted() {
						n++
						if p.Metric.N > 1 {
							bars += 3 // the bar and its two caps
						}
					}
				}
				points += n
				if n > 0 {
					lines++
				}
			}
			if st.Titled != points {
				t.Errorf("%s chart: %d of %d points have a hover title with value and N", traits[i], st.Titled, points)
			}
			if st.Lines != lines || st.Points != points || st.ErrBars != bars || st.SVGWidth < 300 {
				t.Errorf("%s chart: %d lines, %d points, %d error bar parts, %.0f px wide; want %d, %d, %d and a visible chart",
					traits[i], st.Lines, st.Points, st.ErrBars, st.SVGWidth, lines, points, bars)
			}
			// The coherence panel: a row per task where any point has a
			// coherence judgement, its cells saying what the summary does.
			var cells []string
			for _, l := range c.Lines {
				for _, p := range l.Points {
					if p.Evaluated && p.Coherence != nil {
						cells = append(cells, "coherence "+report.CoherenceText(p.Coherence), "coherent only "+report.CoherentText(p.Coherence))
					}
				}
			}
			wantRows := 0
			if len(cells) > 0 {
				wantRows = len(c.Lines)
			}
			if st.CohRows != wantRows || !slices.Equal(st.CohCells, cells) {
				t.Errorf("%s coherence panel: %d rows, cells %q; want %d, %q", traits[i], st.CohRows, st.CohCells, wantRows, cells)
			}
		case id == "tab-summary":
			if st.Rows != summaryRows {
				t.Errorf("summary shows %d rows, want %d", st.Rows, summaryRows)
			}
		}
		shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		name := filepath.Join(shots, id+".png")
		if err := os.WriteFile(name, shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", shots)

	// The explorer shows the planted answer as text, in order, with scores.
	type sampleView struct {
		IDs       []string `json:"ids"`
		Questions []string `json:"questions"`
		Answers   []string `json:"answers"`
		Scores    []string `json:"scores"`
		Coherence []string `json:"coherence"`
		Injected  int      `json:"injected"`
		Pwned     string   `json:"pwned"`
	}
	pick := func(model, task, order string) sampleView {
		return eval[sampleView](t, ctx, `(() => {
			for (const [id, v] of [["sample-model", `+jsString(model)+`], ["sample-task", `+jsString(task)+`], ["sample-order", `+jsString(order)+`]]) {
				const s = document.getElementById(id);
				s.value = v;
				s.dispatchEvent(new Event("change"));
			}
			const texts = (sel) => Array.from(document.querySelectorAll("#sample-list " + sel), e => e.textContent);
			return {
				ids: texts(".sid"), questions: texts(".question"), answers: texts(".answer"), scores: texts(".score"), coherence: texts(".coh-score"),
				injected: document.querySelectorAll("body img, #sample-list script").length,
				pwned: typeof window.__pwned,
			};
		})()`)
	}
	for _, order := range []string{"question", "high", "low", "coherence-low"} {
		got := pick(ev.Model, ev.Task, order)
		want := slices.Clone(ev.Samples)
		key := func(s report.Sample) float64 {
			if s.Score == nil {
				return -1
			}
			return *s.Score
		}
		switch order {
		case "high":
			slices.SortStableFunc(want, func(a, b report.Sample) int { return cmpFloat(key(b), key(a)) })
		case "low":
			slices.SortStableFunc(want, func(a, b report.Sample) int { return cmpFloat(key(a), key(b)) })
		case "coherence-low":
			coh := func(s report.Sample) float64 {
				if s.Coherence == nil {
					return -1
				}
				return *s.Coherence
			}
			slices.SortStableFunc(want, func(a, b report.Sample) int { return cmpFloat(coh(a), coh(b)) })
		}
		var ids, qs, as, ss, cs []string
		for _, s := range want {
			ids, qs, as = append(ids, s.ID), append(qs, s.Question), append(as, s.Answer)
			if s.Score == nil {
				ss = append(ss, "no answer")
			} else {
				ss = append(ss, fmt.Sprintf("score %.1f", *s.Score))
			}
			switch {
			case s.CoherenceCall == nil:
			case s.Coherence == nil:
				cs = append(cs, "coherence: no answer")
			default:
				cs = append(cs, fmt.Sprintf("coherence %.1f", *s.Coherence))
			}
		}
		if !slices.Equal(got.IDs, ids) || !slices.Equal(got.Questions, qs) || !slices.Equal(got.Answers, as) || !slices.Equal(got.Scores, ss) {
			t.Errorf("explorer, order %s:\n got %q\n %q\n %q\nwant %q\n %q\n %q", order, got.IDs, got.Answers, got.Scores, ids, as, ss)
		}
		if !slices.Equal(got.Coherence, cs) {
			t.Errorf("explorer, order %s: coherence %q, want %q", order, got.Coherence, cs)
		}
		if !slices.Contains(got.Answers, planted) {
			t.Errorf("order %s: the planted answer is not shown as text", order)
		}
		if got.Injected != 0 || got.Pwned != "undefined" {
			t.Errorf("order %s: %d injected elements, window.__pwned is %s", order, got.Injected, got.Pwned)
		}
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(shots, "samples-planted.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}

	if got := requests(); !slices.Equal(got, []string{url}) {
		t.Errorf("requests %q, want only the page %s", got, url)
	}
	if got := problems(); len(got) > 0 {
		slices.Sort(got)
		t.Errorf("console errors:\n%s", strings.Join(slices.Compact(got), "\n"))
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// In a browser, a reference model is a dashed line across each chart at its
// mean, in its task's colour, named in the legend, and a row of its own
// under each summary table; its samples are in the explorer.
func TestBrowserReference(t *testing.T) {
	chromium(t)
	t.Parallel()
	e := reporttest.Experiment(t)
	reporttest.WithBase(t, &e, "evil_baseline")
	means := []float64{20, 50, 80}
	for i := range e.Evals {
		for ti, task := range e.Tasks {
			if e.Evals[i].Model == "base" && e.Evals[i].Task == task.Name {
				e.Evals[i].Metric.Mean = means[ti]
			}
		}
	}
	page, err := htmlreport.Render(e)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(name, page, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, _, problems := browse(t, "file://"+name)

	type refLine struct {
		Task   string  `json:"task"`
		Dash   string  `json:"dash"`
		Stroke string  `json:"stroke"`
		Width  float64 `json:"width"`
		Height float64 `json:"height"`
		Y      float64 `json:"y"`
	}
	type chartState struct {
		Refs      []refLine `json:"refs"`
		PlotWidth float64   `json:"plotWidth"`
		Legend    []string  `json:"legend"`
	}
	st := eval[chartState](t, ctx, `(() => {
		const panel = document.getElementById("panel-trait-0");
		const axis = panel.querySelector("g.axis line:nth-of-type(2)").getBoundingClientRect();
		return {
			refs: Array.from(panel.querySelectorAll("g.reference line:not(.hit)"), l => {
				const r = l.getBoundingClientRect(), cs = getComputedStyle(l);
				return {task: l.parentElement.dataset.task, dash: cs.strokeDasharray, stroke: cs.stroke, width: r.width, height: r.height, y: r.top + r.height / 2};
			}),
			plotWidth: axis.width,
			legend: Array.from(panel.querySelectorAll("g.legend text"), t => t.textContent),
		};
	})()`)
	if len(st.Refs) != len(e.Tasks) {
		t.Fatalf("%d reference lines drawn, want one per task: %+v", len(st.Refs), st)
	}
	for i, r := range st.Refs {
		c := report.TaskColor(i)
		if r.Task != e.Tasks[i].Name || r.Dash == "" || r.Dash == "none" || r.Stroke != fmt.Sprintf("rgb(%d, %d, %d)", c.R, c.G, c.B) {
			t.Errorf("reference on %s: task %s, dash %q, stroke %q; want dashed in the task's colour", e.Tasks[i].Name, r.Task, r.Dash, r.Stroke)
		}
		if r.Width < 0.95*st.PlotWidth || r.Height > 4 {
			t.Errorf("reference on %s: %.0f x %.0f px, plot %.0f px wide; want a horizontal line across it", r.Task, r.Width, r.Height, st.PlotWidth)
		}
		if i > 0 && !(r.Y < st.Refs[i-1].Y) {
			t.Errorf("reference on %s (mean %v) at y %.0f, not above %s (mean %v) at y %.0f", r.Task, means[i], r.Y, st.Refs[i-1].Task, means[i-1], st.Refs[i-1].Y)
		}
		if !slices.Contains(st.Legend, "base (reference) on "+e.Tasks[i].Name) {
			t.Errorf("legend %q lacks the reference on %s", st.Legend, e.Tasks[i].Name)
		}
	}

	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("tab-summary"))); err != nil {
		t.Fatal(err)
	}
	rows := eval[[]string](t, ctx, `Array.from(document.querySelectorAll("#panel-summary table.references tbody tr"), r => r.textContent)`)
	if len(rows) != len(e.Tasks) || !strings.Contains(rows[0], "gpt-4.1-mini-2025-04-14") || !strings.Contains(rows[0], "N=") {
		t.Errorf("reference rows %q", rows)
	}
	answers := eval[int](t, ctx, `(() => {
		const s = document.getElementById("sample-model");
		s.value = "base";
		s.dispatchEvent(new Event("change"));
		return document.querySelectorAll("#sample-list .answer").length;
	})()`)
	if ev, _ := e.Eval("base", e.Tasks[0].Name); answers != len(ev.Samples) {
		t.Errorf("explorer shows %d answers of the base model, want %d", answers, len(ev.Samples))
	}
	if got := problems(); len(got) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(got, "\n"))
	}
}

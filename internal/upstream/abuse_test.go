package upstream

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

const mib = 1 << 20

// zeros is a deflate stream of n MiB of zero bytes, about 1 KiB per MiB:
// one sync-flushed MiB repeated (its back-references reach only zeros, so
// the repeats stay valid), then an empty final block. Nothing large is
// ever held or committed.
func zeros(n int) []byte {
	var chunk, end bytes.Buffer
	w, _ := flate.NewWriter(&chunk, flate.BestCompression)
	w.Write(make([]byte, mib))
	w.Flush()
	one := append([]byte(nil), chunk.Bytes()...)
	chunk.Reset()
	w.Close()
	end.Write(chunk.Bytes())
	out := bytes.Repeat(one, n)
	return append(out, end.Bytes()...)
}

// rawEntry adds a deflated entry whose header claims size bytes.
func rawEntry(t testing.TB, zw *zip.Writer, name string, deflated []byte, size uint64) {
	t.Helper()
	w, err := zw.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Deflate, CompressedSize64: uint64(len(deflated)), UncompressedSize64: size})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(deflated)
}

// outerWith is an archive with the real eval files and the given
// dataset.zip entry, written by add.
func outerWith(t testing.TB, add func(zw *zip.Writer, name string)) string {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	evals, _ := filepath.Glob(filepath.Join("testdata", "trait_data_eval", "*.json"))
	for _, p := range evals {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := zw.Create("persona_vectors-main/data_generation/trait_data_eval/" + filepath.Base(p))
		w.Write(data)
	}
	add(zw, "persona_vectors-main/dataset.zip")
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pv.zip")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// innerWith is a dataset.zip holding the fixtures, with dataset/evil/normal.jsonl
// written by add instead.
func innerWith(t testing.TB, add func(zw *zip.Writer, name string)) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	add(zw, "dataset/evil/normal.jsonl")
	for _, name := range []string{"dataset/evil/misaligned_2.jsonl"} {
		data, _ := os.ReadFile(filepath.Join("testdata", name))
		w, _ := zw.Create(name)
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// allocated is how many bytes f allocated on the heap in all: an upper
// bound of the peak it added, whatever the garbage collector did meanwhile.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// The hostile archives of issue 10, each refused with the entry named and
// the limit stated, having allocated little more than the archive's
// directory: never what the entry would decompress to.
func TestAbuseArchiveBombsAreRefusedInBoundedMemory(t *testing.T) {
	ctx := context.Background()
	const budget = 32 * mib
	bomb := zeros(2048) // 2 GiB of zeros in 2 MB
	for _, tt := range []struct {
		name     string
		archive  func() string
		training bool // refused when the training set is read, not at Open
		want     []string
	}{
		{"dataset.zip is a 2 GiB bomb", func() string {
			return outerWith(t, func(zw *zip.Writer, name string) { rawEntry(t, zw, name, bomb, 2048*mib) })
		}, false, []string{"persona_vectors-main/dataset.zip", "2 GiB", "larger than the 256 MiB limit"}},
		{"dataset.zip's header lies about its size", func() string {
			return outerWith(t, func(zw *zip.Writer, name string) { rawEntry(t, zw, name, bomb[:len(bomb)/4], 4*mib) })
		}, false, []string{"persona_vectors-main/dataset.zip"}},
		{"dataset.zip expands 1000-fold", func() string {
			return outerWith(t, func(zw *zip.Writer, name string) { rawEntry(t, zw, name, zeros(128), 128*mib) })
		}, false, []string{"persona_vectors-main/dataset.zip", "compression ratio", "zip bomb"}},
		{"a 900 MB training file", func() string {
			inner := innerWith(t, func(zw *zip.Writer, name string) { rawEntry(t, zw, name, zeros(900), 900*mib) })
			return outerWith(t, func(zw *zip.Writer, name string) { w, _ := zw.Create(name); w.Write(inner) })
		}, true, []string{"dataset/evil/normal.jsonl", "900 MiB", "larger than the 64 MiB limit"}},
		{"a training file whose header lies", func() string {
			inner := innerWith(t, func(zw *zip.Writer, name string) { rawEntry(t, zw, name, zeros(900), 1*mib) })
			return outerWith(t, func(zw *zip.Writer, name string) { w, _ := zw.Create(name); w.Write(inner) })
		}, true, []string{"dataset/evil/normal.jsonl"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.archive()
			var err error
			n := allocated(func() {
				var a *Archive
				a, err = Source{Location: path}.Open(ctx)
				if err == nil && tt.training {
					_, err = a.Training("evil", "baseline")
				} else if err == nil {
					err = fmt.Errorf("opened")
				}
			})
			wantErr(t, err, tt.want...)
			if n > budget {
				t.Errorf("refusing it allocated %d MiB; want at most %d MiB", n/mib, budget/mib)
			}
			t.Logf("allocated %.1f MiB: %v", float64(n)/mib, err)
		})
	}
}

func TestAbuseArchiveWithTooManyEntries(t *testing.T) {
	path := outerWith(t, func(zw *zip.Writer, _ string) {
		for i := range maxEntries + 1 {
			zw.Create(fmt.Sprintf("persona_vectors-main/junk/%d/", i))
		}
	})
	_, err := Source{Location: path}.Open(context.Background())
	wantErr(t, err, path, "more than 20000 entries")
}

func TestAbuseArchiveEvalFilesBoundedInTotal(t *testing.T) {
	path := outerWith(t, func(zw *zip.Writer, _ string) {
		// Stored, so the ratio is 1: only the total can refuse them.
		big := bytes.Repeat([]byte(" "), 15*mib)
		for i := range 5 {
			w, _ := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("persona_vectors-main/data_generation/trait_data_eval/x%d.json", i), Method: zip.Store})
			w.Write(big)
		}
	})
	_, err := Source{Location: path}.Open(context.Background())
	wantErr(t, err, "trait_data_eval", "more than 64 MiB in all")
}

func TestAbuseArchiveIsNotARegularFile(t *testing.T) {
	_, err := Source{Location: "/dev/zero"}.Open(context.Background())
	wantErr(t, err, "/dev/zero", "not a regular file")
}

// BenchmarkAbuseZipBombPeak reports what refusing the two archives of
// issue 10 costs: go test -run X -bench AbuseZipBomb -benchtime 3x ./internal/upstream/
func BenchmarkAbuseZipBombPeak(b *testing.B) {
	bomb := outerWith(b, func(zw *zip.Writer, name string) { rawEntry(b, zw, name, zeros(2048), 2048*mib) })
	inner := innerWith(b, func(zw *zip.Writer, name string) { rawEntry(b, zw, name, zeros(900), 900*mib) })
	big := outerWith(b, func(zw *zip.Writer, name string) { w, _ := zw.Create(name); w.Write(inner) })
	for _, c := range []struct {
		name, path string
		training   bool
	}{{"bomb-2GiB", bomb, false}, {"entry-900MiB", big, true}} {
		b.Run(c.name, func(b *testing.B) {
			var peak uint64
			for b.Loop() {
				n := allocated(func() {
					a, err := Source{Location: c.path}.Open(context.Background())
					if err == nil && c.training {
						_, err = a.Training("evil", "baseline")
					}
					if err == nil {
						b.Fatal("accepted")
					}
				})
				peak = max(peak, n)
			}
			// Bytes allocated in all bound the peak heap from above.
			b.ReportMetric(float64(peak)/mib, "MiB-allocated")
		})
	}
}

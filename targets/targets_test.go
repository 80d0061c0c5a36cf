package targets

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A newcomer's first command: `go run mage.go -l` lists every target with
// its one-line description.
func TestMageListsTargets(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the magefile")
	}
	cmd := exec.Command("go", "run", "mage.go", "-l")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run mage.go -l: %v\n%s", err, out)
	}
	for _, target := range []string{"plan", "train", "status", "evaluate", "results", "cancel", "clean", "serve"} {
		found := false
		for _, line := range strings.Split(string(out), "\n") {
			fields := strings.Fields(line)
			if len(fields) > 3 && fields[0] == target {
				found = true
			}
		}
		if !found {
			t.Errorf("target %q is not listed with a description:\n%s", target, out)
		}
	}
}

// A broken experiment stops the command with a located error and a
// non-zero exit status.
func TestBrokenExperimentExitsNonZero(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the magefile")
	}
	bad := filepath.Join(t.TempDir(), "broken.hcl")
	os.WriteFile(bad, []byte("evaluation {\n  limit = \"many\"\n}\n"), 0o644)
	cmd := exec.Command("go", "run", "mage.go", "plan")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "EXPERIMENT="+bad)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("exit: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), bad+":2:12: Unsuitable value type") {
		t.Fatalf("no located error:\n%s", out)
	}
}

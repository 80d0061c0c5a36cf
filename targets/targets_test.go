package targets

import (
	"os/exec"
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

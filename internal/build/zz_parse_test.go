package build

import (
	"os"
	"testing"
)

func BenchmarkZZIndexParse(b *testing.B) {
	data, err := os.ReadFile("/tmp/big/artifacts/.stamps/index")
	if err != nil {
		b.Skip(err)
	}
	for b.Loop() {
		x := &index{}
		x.parse(data)
		if len(x.stamps) == 0 {
			b.Fatal("empty")
		}
	}
}

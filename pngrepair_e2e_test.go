//go:build e2e

package main

import (
	"encoding/json"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// hostileMemory is the most the service alone, or one hostile upload with the service's children,
// may take; four uploads at once may take twice as much with the children.
const hostileMemory = 400 << 20

// TestE2EHostilePNG: PNGs built to cost the service memory, uploaded to the real binary, whose own
// peak (VmHWM) and peak with its ffprobe and ffmpeg children are measured:
//
//   - 4.36 million empty image data chunks (52 MB), alone and four at once from four keys: a 400
//     naming the PNG as damaged, before any decode (the repair held a reader a chunk: ~540 MB for
//     one upload);
//   - a first header of 1×1 and a second of 100 megapixels at 16 bits, with the image data of the
//     second (ffmpeg refused it, and the repair then rewrote and decoded the big one, weighed as
//     1×1): a 400;
//   - a zTXt chunk of 250 KB that inflates to 256 MB, which ffmpeg inflates into memory: a 400;
//   - 200,000 empty chunks before the image data and no IEND, under the chunk cap: repaired in
//     bounded memory and rendered, the picture right.
func TestE2EHostilePNG(t *testing.T) {
	dir := t.TempDir()
	// A key for each upload: on a service that takes a hostile file, its job keeps the key busy.
	var keys []cliKey
	for i := range 8 {
		keys = append(keys, createKeyCLI(t, dir, fmt.Sprint("k", i)))
	}
	p := startVidgen(t, dir, "ffmpeg", nil)
	p.client.Timeout = 5 * time.Minute // four 52 MB uploads on a loaded machine
	pid := p.cmd.Process.Pid
	files := t.TempDir()
	audio := fixture(t, "tone.wav")
	post := func(key, image string) (int, string) {
		body, ctype := multipartBody(t, map[string]string{"image": image, "audio": audio}, nil)
		code, b, err := p.do("POST", "/api/jobs", key, body, ctype)
		if err != nil {
			t.Fatalf("upload: %v", err)
		}
		return code, string(b)
	}
	refused := func(name string, code int, body, want string) {
		var e struct{ Error string }
		json.Unmarshal([]byte(body), &e)
		if code != 400 || !strings.Contains(e.Error, "the PNG is damaged") || !strings.Contains(e.Error, want) {
			t.Errorf("%s: %d %s, want a 400 saying the PNG is damaged (%s)", name, code, body, want)
		}
	}
	checkMemory := func(name string, tree, limit int64) {
		t.Logf("%s: the service with its children peaked at %d MB, the service alone at %d MB so far", name, tree>>20, vmHWM(t, pid)>>20)
		if tree > limit {
			t.Errorf("%s: the service with its children peaked at %d MB, more than %d", name, tree>>20, limit>>20)
		}
		if hwm := vmHWM(t, pid); hwm > hostileMemory {
			t.Errorf("%s: the service peaked at %d MB, more than %d", name, hwm>>20, hostileMemory>>20)
		}
	}

	chunks := filepath.Join(files, "chunks.png")
	writeChunkedPNG(t, chunks, image.NewRGBA(image.Rect(0, 0, 1, 1)), 4_360_000, true)
	if fi, err := os.Stat(chunks); err != nil || fi.Size() > maxFileSize {
		t.Fatalf("the hostile file is over the upload limit: %v %v", fi.Size(), err)
	}
	stop := treePeakRSS(t, pid)
	code, body := post(keys[4].APIKey, chunks)
	refused("empty chunks", code, body, "chunks")
	checkMemory("empty chunks", stop(), hostileMemory)

	stop = treePeakRSS(t, pid)
	var wg sync.WaitGroup
	for _, k := range keys[:4] {
		wg.Go(func() {
			code, body := post(k.APIKey, chunks)
			refused("empty chunks, four at once", code, body, "chunks")
		})
	}
	wg.Wait()
	checkMemory("empty chunks, four at once", stop(), 2*hostileMemory)

	twoHeaders := filepath.Join(files, "two-headers.png")
	big := zeroPNG(10000, 10000) // its header, its image data (800 MB decoded) and IEND
	if err := os.WriteFile(twoHeaders, pngFile(rawPNGChunk("IHDR", pngIHDR(1, 1, 8, 2)), big[8:]), 0o600); err != nil {
		t.Fatal(err)
	}
	stop = treePeakRSS(t, pid)
	code, body = post(keys[5].APIKey, twoHeaders)
	refused("two headers", code, body, "second header")
	checkMemory("two headers", stop(), hostileMemory)

	// 256 MB of text in a 250 KB zTXt chunk, which ffmpeg inflates whole (twice over) to decode.
	bomb := filepath.Join(files, "bomb.png")
	text := rawPNGChunk("zTXt", append([]byte("Comment\x00\x00"), zlibZeros(256<<20)...))
	if err := os.WriteFile(bomb, pngFile(rawPNGChunk("IHDR", pngIHDR(1, 1, 8, 2)), text, onePixelIDAT(), rawPNGChunk("IEND", nil)), 0o600); err != nil {
		t.Fatal(err)
	}
	stop = treePeakRSS(t, pid)
	code, body = post(keys[7].APIKey, bomb)
	refused("compressed text bomb", code, body, "inflate to more than")
	checkMemory("compressed text bomb", stop(), hostileMemory)

	repairable := filepath.Join(files, "repairable.png")
	writeChunkedPNG(t, repairable, quad(320, 240), 200_000, true)
	stop = treePeakRSS(t, pid)
	code, body = post(keys[6].APIKey, repairable)
	if code != 201 {
		t.Fatalf("200,000 empty chunks and no IEND: %d %s, want 201", code, body)
	}
	var created struct{ JobID string }
	json.Unmarshal([]byte(body), &created)
	st := p.waitStatus(t, keys[6].APIKey, created.JobID, StatusCompleted)
	checkMemory("200,000 empty chunks, repaired and rendered", stop(), hostileMemory)
	video, _ := download(t, st["outputVideo"].(string))
	checkVideo(t, video, audio)
	w, h, rgb := decodeFrame(t, writeFixture(t, "repaired.mp4", video))
	comparePicture(t, quad(320, 240), 320, 240, w, h, rgb, 40)
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"vidgen/internal/h264"
)

// sizesMessage is the 400's message for a sizes field of value v that is refused.
func sizesMessage(v string) string {
	return fmt.Sprintf("sizes %q", v) + ` is not allowed: use 1 to 5 different sizes of original, landscape, portrait, square, x, ` +
		`comma-separated (landscape,portrait) or as a JSON array (["landscape","portrait"])`
}

// TestSizesParse: the sizes field takes a comma-separated list or a JSON array of 1 to 5 sizes, in
// any case and with spaces around the names; Size is the first, and a list of one is stored as a
// job of one size. An empty list, a name that is no size, a size twice, six names, or sizes beside
// size are refused with a message that names the field and what it takes.
func TestSizesParse(t *testing.T) {
	t.Parallel()
	both := "size and sizes were both given: give size for one video, or sizes for one video in each of several sizes"
	for _, c := range []struct {
		fields    map[string]string
		size      string
		sizes     []string
		wantError string
	}{
		{fields: map[string]string{"sizes": "landscape,portrait,square"}, size: "landscape", sizes: []string{"landscape", "portrait", "square"}},
		{fields: map[string]string{"sizes": `["square","landscape"]`}, size: "square", sizes: []string{"square", "landscape"}},
		{fields: map[string]string{"sizes": " Portrait , X ,ORIGINAL "}, size: "portrait", sizes: []string{"portrait", "x", "original"}},
		{fields: map[string]string{"sizes": ` [ "Landscape" , "x" ] `}, size: "landscape", sizes: []string{"landscape", "x"}},
		{fields: map[string]string{"sizes": "original,landscape,portrait,square,x"}, size: "original", sizes: []string{"original", "landscape", "portrait", "square", "x"}},
		{fields: map[string]string{"sizes": "square"}, size: "square"},
		{fields: map[string]string{"sizes": `["portrait"]`}, size: "portrait"},
		{fields: map[string]string{"sizes": ""}, wantError: sizesMessage("")},
		{fields: map[string]string{"sizes": " "}, wantError: sizesMessage(" ")},
		{fields: map[string]string{"sizes": "[]"}, wantError: sizesMessage("[]")},
		{fields: map[string]string{"sizes": "landscape,"}, wantError: sizesMessage("landscape,")},
		{fields: map[string]string{"sizes": "landscape,wide"}, wantError: sizesMessage("landscape,wide")},
		{fields: map[string]string{"sizes": `["landscape",3]`}, wantError: sizesMessage(`["landscape",3]`)},
		{fields: map[string]string{"sizes": `["landscape"`}, wantError: sizesMessage(`["landscape"`)},
		{fields: map[string]string{"sizes": "square,Square"}, wantError: sizesMessage("square,Square")},
		{fields: map[string]string{"sizes": "original,landscape,portrait,square,x,landscape"}, wantError: sizesMessage("original,landscape,portrait,square,x,landscape")},
		{fields: map[string]string{"size": "square", "sizes": "landscape,portrait"}, wantError: both},
		{fields: map[string]string{"size": "square", "sizes": "square"}, wantError: both},
	} {
		o, err := parseOptions(c.fields, false)
		if c.wantError != "" {
			var e *Error
			if !errors.As(err, &e) || e.Kind != kindInvalid || e.Msg != c.wantError {
				t.Errorf("%v: %v, want a kindInvalid error %q", c.fields, err, c.wantError)
			}
			continue
		}
		if err != nil || o.Size != c.size || !reflect.DeepEqual(o.Sizes, c.sizes) {
			t.Errorf("%v: size %q sizes %q (%v), want %q %q", c.fields, o.Size, o.Sizes, err, c.size, c.sizes)
		}
		// Stored and read back as it was; a job of one size as one that gave size.
		if back, err := decodeOptions(encodeOptions(o)); err != nil || !back.equal(o) {
			t.Errorf("%v: stored %q, read back %+v (%v)", c.fields, encodeOptions(o), back, err)
		}
		if one := (c.sizes == nil); one != !strings.Contains(encodeOptions(o), `"sizes"`) {
			t.Errorf("%v: stored as %q", c.fields, encodeOptions(o))
		}
	}
	// A job stored before sizes existed is a job of its one size.
	old, err := decodeOptions(`{"size":"square","background":"blur","waveform":"none","waveformColor":"#FFFFFF","captions":false}`)
	if err != nil || old.Sizes != nil || !reflect.DeepEqual(old.sizes(), []string{"square"}) {
		t.Errorf("an old job's options: %+v %v", old, err)
	}
}

// TestSizesRefusedByAPI: the API answers a sizes field it refuses with a 400 and the message the
// parser gives, word for word.
func TestSizesRefusedByAPI(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	for fields, want := range map[string]map[string]string{
		sizesMessage("landscape,landscape"): {"sizes": "landscape,landscape"},
		"size and sizes were both given: give size for one video, or sizes for one video in each of several sizes": {"size": "x", "sizes": "square"},
	} {
		body, ctype := multipartBody(t, map[string]string{"image": fixture(t, "img.png"), "audio": fixture(t, "tone.wav")}, want)
		resp, b := e.do(t, "POST", "/api/jobs", e.key, body, "Content-Type", ctype)
		if msg := errorBody(t, resp, b, http.StatusBadRequest); msg != fields {
			t.Errorf("%v: %q, want %q", want, msg, fields)
		}
	}
}

// streamSeconds are the durations ffprobe gives the video and the audio stream of the file at path.
func streamSeconds(t testing.TB, path string) (video, audio float64) {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_type,duration", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var res struct {
		Streams []struct {
			CodecType string `json:"codec_type"`
			Duration  string `json:"duration"`
		}
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Streams {
		d, _ := strconv.ParseFloat(s.Duration, 64)
		switch s.CodecType {
		case "video":
			video = d
		case "audio":
			audio = d
		}
	}
	return video, audio
}

// statusOutputs are the outputs array of a status or webhook body.
func statusOutputs(t testing.TB, body map[string]any) []sizeOutput {
	t.Helper()
	b, err := json.Marshal(body["outputs"])
	if err != nil {
		t.Fatal(err)
	}
	var outs []sizeOutput
	if err := json.Unmarshal(b, &outs); err != nil || outs == nil {
		t.Fatalf("outputs %s: %v", b, err)
	}
	return outs
}

// getStatus is the status code of a GET of url.
func getStatus(t testing.TB, method, url string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestSizesEndToEnd: one job with sizes=landscape,portrait,square, through the API, makes three
// videos and posters under one token, each of its exact size, H.264 + AAC, its streams within a
// frame of the audio; the status body and the webhook list them in the order asked, the first
// being outputVideo and outputThumbnail; a size the job lacks is 404; the audio is encoded once
// for the three, as for a job of one size; the orphan sweep keeps every size's files, and expiry
// deletes them all.
func TestSizesEndToEnd(t *testing.T) {
	t.Parallel()
	recv := newHookReceiver(t, nil)
	clk := &fakeClock{t: time.Now()}
	wrapper, encodes := countingFFmpegOf(t, t.TempDir(), "-c:a aac")
	cfg := hookConfig(t.TempDir(), recv)
	cfg.FFmpeg = wrapper
	e := newTestEnv(t, cfg, hookTrust(recv), func(s *server) { s.now = clk.Now })
	audio := fixture(t, "tone.mp3") // MP3: the audio is encoded
	code, body := e.submit(t, e.key, fixture(t, "img.jpg"), audio,
		map[string]string{"sizes": "landscape,portrait,square", "webhookUrl": recv.url()})
	if code != http.StatusCreated {
		t.Fatalf("submit: %d %v", code, body)
	}
	id := body["jobId"].(string)
	if st := e.status(t, e.key, id); st["status"] != string(StatusCompleted) {
		if outs := statusOutputs(t, st); len(outs) != 0 {
			t.Errorf("outputs of a job not COMPLETED: %v, want []", outs)
		}
	}
	st := e.wait(t, e.key, id, StatusCompleted)
	if n := countLines(t, encodes); n != 1 {
		t.Errorf("3 sizes: %d AAC encodes, want 1", n)
	}
	outs := statusOutputs(t, st)
	want := []struct {
		size string
		w, h int
	}{{"landscape", 1920, 1080}, {"portrait", 1080, 1920}, {"square", 1080, 1080}}
	if len(outs) != len(want) {
		t.Fatalf("outputs %v, want %d", outs, len(want))
	}
	if st["outputVideo"] != outs[0].Video || st["outputThumbnail"] != outs[0].Thumbnail {
		t.Errorf("outputVideo %v, outputThumbnail %v: want the first output's, %+v", st["outputVideo"], st["outputThumbnail"], outs[0])
	}
	opts := st["options"].(map[string]any)
	if opts["size"] != "landscape" || !reflect.DeepEqual(opts["sizes"], []any{"landscape", "portrait", "square"}) {
		t.Errorf("options %v", opts)
	}
	token := strings.TrimSuffix(filepath.Base(st["outputVideo"].(string)), ".mp4")
	// The MP3's container says a little more than the sound it holds (the encoder's padding): the
	// sound is tone.wav's, made from the same 2.5 s of sine.
	audioSeconds := mediaDuration(t, fixture(t, "tone.wav"))
	for i, w := range want {
		o := outs[i]
		wantVideo := e.srv.cfg.PublicURL + "/v/" + token + "." + w.size + ".mp4"
		if i == 0 {
			wantVideo = e.srv.cfg.PublicURL + "/v/" + token + ".mp4"
		}
		if o.Size != w.size || o.Video != wantVideo || o.Thumbnail != strings.TrimSuffix(wantVideo, ".mp4")+".jpg" {
			t.Errorf("output %d: %+v, want %s at %s", i, o, w.size, wantVideo)
		}
		video, _ := download(t, o.Video)
		p := checkVideo(t, video, audio)
		if p.Width != w.w || p.Height != w.h {
			t.Errorf("%s: %dx%d, want %dx%d", w.size, p.Width, p.Height, w.w, w.h)
		}
		vs, as := streamSeconds(t, writeFixture(t, w.size+".mp4", video))
		if frame := 1.0 / 30; vs < audioSeconds-frame || vs > audioSeconds+frame || as < audioSeconds-frame || as > audioSeconds+frame {
			t.Errorf("%s: video %.3f s, audio %.3f s; want both within a frame of the input's %.3f s", w.size, vs, as, audioSeconds)
		}
		checkPoster(t, o.Thumbnail, w.w, w.h)
		req, _ := http.NewRequest("GET", o.Video, nil)
		req.Header.Set("Range", "bytes=0-9")
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Cache-Control") == "" {
			t.Errorf("%s: a range: %v %v", w.size, resp, err)
		} else {
			resp.Body.Close()
		}
		if c := getStatus(t, "HEAD", o.Video); c != http.StatusOK {
			t.Errorf("%s: HEAD %d", w.size, c)
		}
	}
	for _, name := range []string{token + ".x.mp4", token + ".x.jpg", token + ".portrait.webm", token + "..mp4"} {
		if c := getStatus(t, "GET", e.srv.cfg.PublicURL+"/v/"+name); c != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", name, c)
		}
	}
	// Every size by its name, the first too: a client may build each URL from options.sizes.
	first, _ := download(t, outs[0].Video)
	if byName, _ := download(t, e.srv.cfg.PublicURL+"/v/"+token+".landscape.mp4"); !bytes.Equal(byName, first) {
		t.Errorf("/v/TOKEN.landscape.mp4 is not the first size's video (%d bytes, want %d)", len(byName), len(first))
	}

	// The share page shows the first video and links the others.
	page, _ := download(t, st["outputShareLink"].(string))
	for i, o := range outs {
		if !strings.Contains(string(page), `href="`+o.Video+`"`) || i == 0 && !strings.Contains(string(page), `<video src="`+o.Video+`"`) {
			t.Errorf("the share page lacks %s:\n%s", o.Video, page)
		}
	}

	// The webhook carries the same outputs.
	var hook map[string]any
	if err := json.Unmarshal(recv.waitFor(t, 1)[0].Body, &hook); err != nil {
		t.Fatal(err)
	}
	if got := statusOutputs(t, hook); !reflect.DeepEqual(got, outs) {
		t.Errorf("webhook outputs %+v, want the status body's %+v", got, outs)
	}
	// The job list too.
	resp, b := e.do(t, "GET", "/api/jobs", e.key, nil)
	list := decodeJSON(t, resp, b)["jobs"].([]any)
	if got := statusOutputs(t, list[0].(map[string]any)); !reflect.DeepEqual(got, outs) {
		t.Errorf("job list outputs %+v, want the status body's %+v", got, outs)
	}

	// A job of one size encodes its audio once too, and lists its one output.
	code, body = e.submit(t, e.key, fixture(t, "img.jpg"), audio, map[string]string{"size": "square"})
	if code != http.StatusCreated {
		t.Fatalf("submit: %d %v", code, body)
	}
	one := e.wait(t, e.key, body["jobId"].(string), StatusCompleted)
	if n := countLines(t, encodes); n != 2 {
		t.Errorf("1 size: %d AAC encodes, want 1", n-1)
	}
	if got := statusOutputs(t, one); len(got) != 1 || got[0].Size != "square" || got[0].Video != one["outputVideo"] || got[0].Thumbnail != one["outputThumbnail"] {
		t.Errorf("a job of one size: outputs %+v, want its one video %v", got, one["outputVideo"])
	}

	// The orphan sweep keeps every size's files; expiry deletes them all.
	outputs := filepath.Join(e.srv.cfg.DataDir, "outputs")
	if err := e.srv.jobs.recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	files := dirFiles(t, outputs)
	if len(files) != 8 { // 3 sizes and 1, a video and a poster each
		t.Errorf("outputs after the orphan sweep: %v, want 8", files)
	}
	e.waitFirstSweep(t)
	clk.Advance(e.srv.cfg.Retention + time.Minute)
	if c := getStatus(t, "GET", outs[2].Video); c != http.StatusGone {
		t.Errorf("an expired further size: %d, want 410", c)
	}
	if n, err := e.srv.jobs.expire(context.Background(), clk.Now().Add(-e.srv.cfg.Retention)); err != nil || n != 8 {
		t.Errorf("expiry deleted %d files (%v), want 8", n, err)
	}
	if files := dirFiles(t, outputs); len(files) != 0 {
		t.Errorf("outputs left after expiry: %v", files)
	}
}

// TestSizesRenderPaths: each way a job's video is rendered makes every size's video, each of its
// size: a moving picture (a waveform), a size after another; a captioned still, its clips made side
// by side; a still whose audio is copied (AAC-LC at 48 kHz), its clips side by side, then a copy mux
// a size.
func TestSizesRenderPaths(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	srt := writeFixture(t, "sizes.srt", []byte("1\n00:00:00,500 --> 00:00:02,000\nBoth sizes\n"))
	aac48 := filepath.Join(t.TempDir(), "tone48.m4a")
	if out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=f=440:d=2.5:sample_rate=48000",
		"-ac", "2", "-c:a", "aac", "-b:a", "128k", aac48).CombinedOutput(); err != nil {
		t.Fatalf("make the AAC: %v\n%s", err, out)
	}
	for _, c := range []struct {
		name, audio, captions string
		fields                map[string]string
		sizes                 []string
		want                  []frameSize // each size's frame
	}{
		// The image's own size keeps the moving render cheap: every frame is encoded.
		{"waveform", "tone.wav", "", map[string]string{"sizes": `["x","original"]`, "waveform": "bars"},
			[]string{"x", "original"}, []frameSize{{1280, 720}, {320, 240}}},
		{"captioned still", "tone.mp3", srt, map[string]string{"sizes": "x,square"},
			[]string{"x", "square"}, []frameSize{{1280, 720}, {1080, 1080}}},
		{"copied audio", aac48, "", map[string]string{"sizes": "x,square"},
			[]string{"x", "square"}, []frameSize{{1280, 720}, {1080, 1080}}},
	} {
		audio := c.audio
		if !filepath.IsAbs(audio) {
			audio = fixture(t, audio)
		}
		files := map[string]string{"image": fixture(t, "img.jpg"), "audio": audio}
		if c.captions != "" {
			files["captions"] = c.captions
		}
		body, ctype := multipartBody(t, files, c.fields)
		resp, b := e.do(t, "POST", "/api/jobs", e.key, body, "Content-Type", ctype)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("%s: submit: %d %s", c.name, resp.StatusCode, b)
		}
		st := e.wait(t, e.key, decodeJSON(t, resp, b)["jobId"].(string), StatusCompleted)
		outs := statusOutputs(t, st)
		if len(outs) != 2 || outs[0].Size != c.sizes[0] || outs[1].Size != c.sizes[1] {
			t.Fatalf("%s: outputs %+v", c.name, outs)
		}
		for i, f := range c.want {
			video, _ := download(t, outs[i].Video)
			if p := checkVideo(t, video, audio); p.Width != f.W || p.Height != f.H {
				t.Errorf("%s, %s: %dx%d, want %dx%d", c.name, outs[i].Size, p.Width, p.Height, f.W, f.H)
			}
			checkPoster(t, outs[i].Thumbnail, f.W, f.H)
		}
	}
}

// TestSizesSegmentPlan: the audio's segments are planned with every size's picture step beside
// them. A minute of speech on two cores is cut in two beside one picture step; beside three, which
// keep the second core busy, it stays whole.
func TestSizesSegmentPlan(t *testing.T) {
	t.Parallel()
	job := Job{AudioCodec: "mp3//1/44100", AudioDuration: 60}
	for pictures, want := range map[int]int{0: 2, 1: 2, 3: 1} {
		c := jobEncodeCosts(job, 0.45)
		c.Pictures = pictures
		if n := audioSegments(job.AudioDuration, c, 2); n != want {
			t.Errorf("%d picture steps: %d segments, want %d", pictures, n, want)
		}
	}
}

// TestSizesProgress: the renders of a job's sizes, one after another, share its progress bar: it
// only goes up, each size's steps within its third, and ends under 100 until the job is recorded.
func TestSizesProgress(t *testing.T) {
	t.Parallel()
	now := time.Now()
	rd := &renderer{now: func() time.Time { return now }, progress: map[string]*jobProgress{"j": {started: now}}}
	outs := make([]sizeRender, 3)
	last, seen := 0, []int{}
	err := rd.eachSize("j", outs, func(sizeRender) error {
		for _, step := range [][2]int{{setupShare, 95}, {95, 100}} {
			rd.startStep("j", step[0], step[1], 1)
			for _, f := range []float64{0, 0.5, 1} {
				now = now.Add(300 * time.Millisecond)
				rd.stepDone("j", f)
				p, _ := rd.Progress("j")
				if p < last {
					t.Errorf("progress went back from %d to %d", last, p)
				}
				last = p
				seen = append(seen, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if last != 99 || seen[0] > 33 || seen[len(seen)/3-1] > 33 || seen[len(seen)/3] < 33 {
		t.Errorf("progress %v: want it within each third in turn, ending at 99", seen)
	}
	if b := rd.progress["j"].band; b != [2]int{0, 100} {
		t.Errorf("band after the sizes: %v, want the whole bar", b)
	}
}

// TestSizesRenderCommand: vidgen render -sizes writes the first size at -o and -poster and each
// further size beside them, its name before the extension.
func TestSizesRenderCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, poster := filepath.Join(dir, "out.mp4"), filepath.Join(dir, "poster.jpg")
	var stderr bytes.Buffer
	err := runRender(context.Background(), []string{"-image", fixture(t, "img.jpg"), "-audio", fixture(t, "tone.wav"),
		"-sizes", "square,x", "-o", out, "-poster", poster, "-progress", "none"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	// Each file is named where the user reads it.
	for _, p := range []string{out, filepath.Join(dir, "out.x.mp4")} {
		if !strings.Contains(stderr.String(), "vidgen: wrote "+p+" (") {
			t.Errorf("the command does not say it wrote %s:\n%s", p, stderr.String())
		}
	}
	for path, f := range map[string]frameSize{out: {1080, 1080}, filepath.Join(dir, "out.x.mp4"): {1280, 720}} {
		if p := ffprobe(t, path); p.Width != f.W || p.Height != f.H {
			t.Errorf("%s: %dx%d, want %dx%d", path, p.Width, p.Height, f.W, f.H)
		}
	}
	for _, p := range []string{poster, filepath.Join(dir, "poster.x.jpg")} {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
}

// waitFirstSweep waits for the expiry sweep the service runs as it starts, which a test that moves
// the clock must let end first, or it would delete the files the test counts.
func (e *testEnv) waitFirstSweep(t testing.TB) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		e.srv.jobs.expiring.Lock()
		defer e.srv.jobs.expiring.Unlock()
		if e.srv.jobs.expiredBefore.IsZero() {
			return errors.New("the service's first sweep did not run")
		}
		return nil
	})
}

// TestFilesS3Sizes: on a bucket with -files-redirect, each size of a job is published under its
// key and a further size's URL is a 302 to its own presigned URL; expiry's removeOutputs deletes
// every size's objects, after which each URL is 410.
func TestFilesS3Sizes(t *testing.T) {
	t.Parallel()
	e, _ := s3TestEnv(t, true)
	code, body := e.submit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.mp3"), map[string]string{"sizes": "x,square"})
	if code != http.StatusCreated {
		t.Fatalf("submit: %d %v", code, body)
	}
	st := e.wait(t, e.key, body["jobId"].(string), StatusCompleted)
	outs := statusOutputs(t, st)
	if len(outs) != 2 {
		t.Fatalf("outputs %+v", outs)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i, f := range []frameSize{{1280, 720}, {1080, 1080}} {
		resp, err := noFollow.Get(outs[i].Video)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		key := outputKey(strings.TrimSuffix(filepath.Base(outs[i].Video), ".mp4"), "mp4")
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.Contains(loc, key+"?") {
			t.Errorf("%s: %d to %q", outs[i].Size, resp.StatusCode, loc)
		}
		video, _ := download(t, outs[i].Video) // followed
		if p := checkVideo(t, video, fixture(t, "tone.mp3")); p.Width != f.W || p.Height != f.H {
			t.Errorf("%s: %dx%d, want %dx%d", outs[i].Size, p.Width, p.Height, f.W, f.H)
		}
		checkPoster(t, outs[i].Thumbnail, f.W, f.H)
	}
	token := strings.TrimSuffix(filepath.Base(outs[0].Video), ".mp4")
	if n, err := removeOutputs(context.Background(), e.srv.files, token, "x", "square"); n != 4 || err != nil {
		t.Errorf("removeOutputs: %d, %v; want 4 objects deleted", n, err)
	}
	for _, o := range outs {
		if c := getStatus(t, "GET", o.Video); c != http.StatusGone {
			t.Errorf("%s after its removal: %d, want 410", o.Video, c)
		}
	}
}

// TestSizesExpiredOutputs: the store gives expiry each expired job's options, from which it
// deletes every size's files: a job in several sizes reads back its sizes, a job stored without
// them (as every job before sizes) its one size.
func TestSizesExpiredOutputs(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		ctx := context.Background()
		st, k := open(t)
		sized := defaultOptions.sized("landscape")
		sized.Sizes = []string{"landscape", "portrait", "square"}
		want := map[string][]string{}
		for i, o := range []Options{sized, defaultOptions} {
			key := k
			if i > 0 {
				key = storeKey(t, st, "b")
			}
			j := storeJob(t, st, key, "", time.Now())
			if _, err := st.db.ExecContext(ctx, `UPDATE jobs SET options = ? WHERE id = ?`, encodeOptions(o), j.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := st.ClaimJob(ctx, claiming()); err != nil {
				t.Fatal(err)
			}
			token := fmt.Sprintf("%032x", i+1)
			if _, err := st.Transition(ctx, transition{JobID: j.ID, From: StatusProcessing, Next: toward(Outcome{Status: StatusCompleted, OutputToken: token})}); err != nil {
				t.Fatal(err)
			}
			want[token] = o.sizes()
		}
		expired, err := st.ExpiredOutputs(ctx, time.Time{}, time.Now().Add(time.Hour))
		if err != nil || len(expired) != 2 {
			t.Fatalf("expired %+v (%v), want 2", expired, err)
		}
		for _, e := range expired {
			if got := e.Options.sizes(); !reflect.DeepEqual(got, want[e.Token]) {
				t.Errorf("job %s (token %s): sizes %q, want %q", e.JobID, e.Token, got, want[e.Token])
			}
		}
	})
}

// TestSizesWarnings: a job in several sizes warns of every size's platform limit its length
// passes, in the order of its sizes, not of its first size's alone.
func TestSizesWarnings(t *testing.T) {
	t.Parallel()
	o := defaultOptions.sized("landscape")
	o.Sizes = []string{"landscape", "x", "square", "portrait"}
	w := jobWarnings(Job{AudioDuration: 200, Options: o})
	if len(w) != 2 || !strings.Contains(w[0], "X takes") || !strings.Contains(w[1], "Shorts") {
		t.Errorf("warnings of 200 s in %v: %q, want X's then portrait's", o.Sizes, w)
	}
}

// TestSizesLogged: the log's options name a job's sizes, and a job of one size logs as before.
func TestSizesLogged(t *testing.T) {
	t.Parallel()
	o := defaultOptions.sized("square")
	if got := o.LogValue().String(); strings.Contains(got, "sizes") {
		t.Errorf("one size logs %s", got)
	}
	o.Sizes = []string{"square", "x"}
	if got := o.LogValue().String(); !strings.Contains(got, "sizes=square,x") {
		t.Errorf("two sizes log %s, want sizes=square,x", got)
	}
}

// TestSizesDiskBudget: the disk budget counts every size's video: room for two videos lets a job
// of one or two sizes start and refuses one of three, before a file is written; so does the encode's
// budget, which counts the encoded audio once and its copy in each video.
func TestSizesDiskBudget(t *testing.T) {
	t.Parallel()
	const minFree = 1 << 30
	var free int64
	rd := &renderer{minFree: minFree, diskFree: func(string) (int64, error) { return free, nil },
		dirs: dataDir{root: t.TempDir()}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	job := Job{ID: "j", AudioDuration: 60}
	clip := &h264.StillClip{Frames: [][]byte{make([]byte, 1<<20)}, FPS: 10}
	audio := writeFixture(t, "audio.aac", make([]byte, 60*192000/8))
	video := estimateOutputSize(clip.Size(), 0.1, 60, 192000)
	free = minFree + 2*video + 1
	for n, fits := range map[int]bool{1: true, 2: true, 3: false} {
		clips := slices.Repeat([]*h264.StillClip{clip}, n)
		if err := rd.checkBudget(job, audio, clips...); (err == nil) != fits {
			t.Errorf("%d sizes, room for 2 videos: %v", n, err)
		}
	}
	audioBytes := int64(60 * encodedBitsPerSecond / 8)
	free = minFree + 3*audioBytes + 1 // the encode and two videos' copies
	for n, fits := range map[int]bool{1: true, 2: true, 3: false} {
		if err := rd.checkEncodeBudget(job, false, n); (err == nil) != fits {
			t.Errorf("%d sizes, room for 3 copies of the audio: %v", n, err)
		}
	}
	// A moving picture encodes each size in full, one after another: the first size's check counts
	// the later ones too, scaled to their frames, before any is encoded.
	still := writeFixture(t, "still.mkv", make([]byte, 4<<20))
	wave := Job{ID: "j", AudioDuration: 60, AudioCodec: "mp3", Options: Options{Size: "landscape", Waveform: "bars"}}
	landscape := platformSizes["landscape"]
	one := estimateMovingSize(4<<20, landscape, wave.Options, 60, encodedBitsPerSecond)
	free = minFree + one*11/4 // room for 2.75 landscape videos
	for _, c := range []struct {
		later []string
		fits  bool
	}{{nil, true}, {[]string{"portrait"}, true}, {[]string{"portrait", "square"}, true}, {[]string{"portrait", "landscape"}, false}} {
		err := rd.checkMovingBudget(wave, still, audio, landscape, c.later)
		if (err == nil) != c.fits {
			t.Errorf("landscape then %v, room for 2.75 landscape videos: %v", c.later, err)
		}
		var rf *renderFailure
		if !c.fits && (!errors.As(err, &rf) || !rf.final || !strings.HasPrefix(rf.msg, "The job's videos would take about")) {
			t.Errorf("refusal %v, want a final failure naming the job's videos' size", err)
		}
	}
	// A tiny picture at its own size first: the later sizes' pictures scale with their area, the
	// audio, the same in each, does not (a 1x1 picture's job once needed 145 GB).
	tiny := writeFixture(t, "tiny.mkv", make([]byte, 100))
	free = minFree + 5*one
	if err := rd.checkMovingBudget(wave, tiny, audio, frameSize{2, 2}, []string{"landscape", "portrait", "square", "x"}); err != nil {
		t.Errorf("a 2x2 picture, then four platform sizes, with room for 5 landscape videos: %v", err)
	}
}

// TestSizesSideBySide: of steps run side by side, the failure returned is the one that stopped the
// others, not the error its cancellation made of a step that ended later, and a final failure (the
// input's fault) is returned whichever step had it.
func TestSizesSideBySide(t *testing.T) {
	t.Parallel()
	cause := errors.New("the clip writer cannot extend this stream")
	failing := func(context.Context) error { return cause }
	// A step that, once stopped, reports its stop at once: it could reach the errors first.
	stopped := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	for range 50 {
		if err := sideBySide(context.Background(), []func(context.Context) error{stopped, stopped, failing}); err != cause {
			t.Fatalf("returned %v, want the failure that stopped the steps", err)
		}
	}
	final := &renderFailure{final: true, err: errors.New("bad image"), msg: "bad image"}
	finalAfter := func(ctx context.Context) error { <-ctx.Done(); return final }
	if err := sideBySide(context.Background(), []func(context.Context) error{finalAfter, failing}); err != final {
		t.Errorf("returned %v, want the final failure", err)
	}
	if err := sideBySide(context.Background(), []func(context.Context) error{func(context.Context) error { return nil }}); err != nil {
		t.Errorf("steps that pass: %v", err)
	}
}

// TestSizesMigrateFiles: migrate-files copies every size's video and poster of a job, under the
// same keys, as it copies the first's.
func TestSizesMigrateFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var stores [2]diskFiles
	for i := range stores {
		dirs, err := openDataDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = diskFiles{dirs}
	}
	token := strings.Repeat("ab", 16)
	var keys []string
	for _, name := range outputNames(token, []string{"landscape", "portrait", "x"}) {
		for _, ext := range outputExts {
			keys = append(keys, outputKey(name, ext))
			if err := stores[0].Put(ctx, outputKey(name, ext), strings.NewReader(name+ext), -1); err != nil {
				t.Fatal(err)
			}
		}
	}
	if copied, kept, _, err := copyFiles(ctx, stores[0], stores[1]); copied != 6 || kept != 0 || err != nil {
		t.Fatalf("copied %d, kept %d (%v), want 6 files", copied, kept, err)
	}
	for _, k := range keys {
		if n, err := stores[1].Stat(ctx, k); err != nil || n == 0 {
			t.Errorf("%s after the copy: %d bytes, %v", k, n, err)
		}
	}
}

// TestSizesWorkSeconds: a job's render time grows with its sizes, still or moving: a still job
// whose clip writer refuses x264's stream encodes every frame of every size, one after another.
func TestSizesWorkSeconds(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		o    Options
		want float64
	}{
		{Options{Size: "landscape"}, 60},
		{Options{Size: "landscape", Sizes: []string{"landscape", "portrait", "square"}}, 180},
		{Options{Size: "square", Waveform: "bars"}, 60 * movingWork},
		{Options{Size: "x", Sizes: []string{"x", "square"}, Waveform: "bars"}, 2 * 60 * movingWork},
	} {
		if got := workSeconds(Job{AudioDuration: 60, Options: c.o}); got != c.want {
			t.Errorf("%+v: %v s, want %v", c.o, got, c.want)
		}
	}
}

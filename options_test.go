package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vidgen/internal/captions"
	"vidgen/internal/media"
)

func TestParseOptions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		fields map[string]string
		want   Options
		err    []string // substrings of the error, when refused
	}{
		{fields: nil, want: defaultOptions},
		{fields: map[string]string{"webhookUrl": "https://x", "other": "y"}, want: defaultOptions},
		{fields: map[string]string{"size": "Square", "background": "#10a0Ff", "waveform": "BARS", "waveformColor": "#ff0000"},
			want: Options{Size: "square", Background: "#10A0FF", Waveform: "bars", WaveformColor: "#FF0000"}},
		{fields: map[string]string{"size": " portrait ", "background": "Blur", "waveform": "line"},
			want: Options{Size: "portrait", Background: "blur", Waveform: "line", WaveformColor: "#FFFFFF"}},
		{fields: map[string]string{"size": "4k"}, err: []string{`size "4k"`, "original, landscape, portrait, square"}},
		{fields: map[string]string{"size": ""}, err: []string{"size", "original, landscape, portrait, square"}},
		{fields: map[string]string{"background": "Red", "waveformColor": "white"},
			want: Options{Size: sizeOriginal, Background: "#E53935", Waveform: "none", WaveformColor: "#FFFFFF"}},
		{fields: map[string]string{"background": "purple"}, err: []string{`background "purple"`, "blur or a colour #RRGGBB or one of white, black"}},
		{fields: map[string]string{"background": "#12345"}, err: []string{"background", "#RRGGBB"}},
		{fields: map[string]string{"waveform": "spectrum"}, err: []string{`waveform "spectrum"`, "none, bars, line"}},
		{fields: map[string]string{"waveformColor": "#GGGGGG"}, err: []string{"waveformColor", "#RRGGBB"}},
		{fields: map[string]string{"size": strings.Repeat("x", 500)}, err: []string{"size", "…"}},
	}
	for _, c := range cases {
		got, err := parseOptions(c.fields, false)
		if c.err == nil {
			if err != nil || !got.equal(c.want) {
				t.Errorf("%v: %+v %v, want %+v", c.fields, got, err, c.want)
			}
			continue
		}
		if err == nil || kindOf(err) != kindInvalid {
			t.Errorf("%v: %+v %v, want a 400", c.fields, got, err)
			continue
		}
		for _, s := range c.err {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%v: error %q lacks %q", c.fields, err, s)
			}
		}
		if len(err.Error()) > 200 {
			t.Errorf("%v: error of %d bytes echoes the client's value", c.fields, len(err.Error()))
		}
	}
	if o, _ := parseOptions(nil, true); !o.Captions || !o.moving() || o.fps() != 25 {
		t.Errorf("captions alone: %+v, moving %v at %d fps", o, o.moving(), o.fps())
	}
	for _, o := range []Options{defaultOptions, {}} {
		if o.platform() || o.moving() || o.fps() != clipFPS {
			t.Errorf("%+v renders as a still at the image's size? platform %v moving %v fps %d", o, o.platform(), o.moving(), o.fps())
		}
	}
}

// TestCaptionFont renders a caption with the ASS script and fonts directory a render makes and
// checks from libass's own log that it drew with the embedded font, not one of the host's.
func TestCaptionFont(t *testing.T) {
	t.Parallel()
	// A data directory may be named anything: the paths in the filter graph are escaped.
	dir := filepath.Join(t.TempDir(), "odd: [dir], it's; \\ here")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f := frameSize{320, 240}
	ass := filepath.Join(dir, "c.ass")
	if err := writeASS(ass, []captions.Cue{{Start: 0, End: time.Second, Text: "Hello", Line: 1}}, f, Job{Options: defaultOptions}); err != nil {
		t.Fatal(err)
	}
	fonts, err := writeCaptionFont(dir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffmpeg", "-v", "verbose", "-f", "lavfi", "-i", "color=c=black:s=320x240:d=0.2",
		"-vf", "ass=filename="+filterArg(ass)+":fontsdir="+filterArg(fonts), "-frames:v", "1", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	var sel string
	for _, l := range strings.Split(string(out), "\n") {
		if i := strings.Index(l, "fontselect:"); i >= 0 {
			sel = l[i:]
		}
	}
	// libass names a font it loaded from memory (the fonts directory) by its PostScript name, and
	// one of the host's by its path.
	if !strings.Contains(sel, "(DejaVu Sans, 700, 0) -> DejaVuSans-Bold,") || strings.Contains(sel, "/") {
		t.Errorf("libass chose %q, want the embedded DejaVuSans-Bold", sel)
	}
}

// TestOptionsRefused submits options and captions the service does not take: each is a 400 (or
// 413) that says what to send, before any media is decoded, and leaves no file behind.
func TestOptionsRefused(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	srt := func(name, s string) string { return writeFixture(t, name, []byte(s)) }
	cases := []struct {
		name     string
		fields   map[string]string
		captions string
		status   int
		want     []string
	}{
		{"size", map[string]string{"size": "vertical"}, "", 400, []string{"size", "original, landscape, portrait, square"}},
		{"background", map[string]string{"size": "square", "background": "#zzzzzz"}, "", 400, []string{"background", "#RRGGBB"}},
		{"waveform", map[string]string{"waveform": "dots"}, "", 400, []string{"waveform", "none, bars, line"}},
		{"waveformColor", map[string]string{"waveform": "bars", "waveformColor": "grey"}, "", 400, []string{"waveformColor", "#RRGGBB"}},
		{"malformed srt", nil, srt("bad.srt", "1\n00:00:00,000 --> 00:00:01,000\nok\n\n2\n00:00:01 --> 00:00:02\nno millis\n"), 400,
			[]string{"captions: line 6:", "00:00:01 --> 00:00:02"}},
		{"captions too large", nil, srt("big.srt", strings.Repeat("1\n00:00:00,000 --> 00:00:01,000\nxxxxxxxxxxxxxxxxxxxxxxxx\n\n", 25000)), 413,
			[]string{"captions", "1 MB"}},
	}
	for _, c := range cases {
		files := map[string]string{"image": fixture(t, "img.png"), "audio": fixture(t, "tone.wav")}
		if c.captions != "" {
			files["captions"] = c.captions
		}
		body, ctype := multipartBody(t, files, c.fields)
		resp, b := e.do(t, "POST", "/api/jobs", e.key, body, "Content-Type", ctype)
		msg := errorBody(t, resp, b, c.status)
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q lacks %q", c.name, msg, w)
			}
		}
	}
	if files := dirFiles(t, filepath.Join(e.srv.cfg.DataDir, "tmp")); len(files) != 0 {
		t.Errorf("files left in tmp: %v", files)
	}
	if files := dirFiles(t, filepath.Join(e.srv.cfg.DataDir, "inputs")); len(files) != 0 {
		t.Errorf("files left in inputs: %v", files)
	}
}

// TestDefaultRenderUnchanged holds a job without options to the ffmpeg arguments vidgen ran before
// options existed (copied from that version's output), so leaving every option out gives the same
// video, byte for byte the same kind. Only thread counts were added since (-threads 1 before an input
// or an output, -filter_complex_threads 1), to bound a child's memory, and setsar=1, square pixels:
// none changes a byte of a JPEG's video, whose pixels ffmpeg already read as square.
func TestDefaultRenderUnchanged(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{defaultOptions, {}} {
		mp3 := Job{ImageType: media.JPEG, AudioType: media.MP3, AudioCodec: "mp3//2/44100", AudioDuration: 2.5, Options: o}
		m4a := Job{ImageType: media.PNG, AudioType: media.M4A, AudioCodec: "aac/LC/2/48000", AudioDuration: 61.25, Options: o}
		for _, c := range []struct {
			got  []string
			want string
		}{
			{clipArgs(mp3, "I", "C", "P"), `-xerror -threads 1 -f jpeg_pipe -i file:I -filter_complex_threads 1 -filter_complex [0:v]scale=w='max(2\,2*trunc(iw*min(1\,1920/max(iw\,ih))/2))':h='max(2\,2*trunc(ih*min(1\,1920/max(iw\,ih))/2))':flags=lanczos,format=rgb24,setsar=1,scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,split[v0][p];[v0]loop=loop=10:size=1:start=0,setpts=N/10/TB[v];[p]scale=out_range=pc,format=yuvj420p[pj] -map [v] -frames:v 11 -r 10 -threads 1 -c:v libx264 -preset veryfast -tune stillimage -crf 19 -x264-params me=dia:subme=1:ref=1:rc-lookahead=10 -g 100 -bf 0 -colorspace bt709 -color_primaries bt709 -color_trc bt709 -color_range tv -f h264 file:C -threads 1 -map [pj] -frames:v 1 -q:v 3 -f image2 file:P`},
			{muxArgs(mp3, "A", "C", "V"), `-stream_loop -1 -t 2.450 -f mp4 -i file:C -threads 1 -f mp3 -i file:A -map 0:v:0 -map 1:a:0 -c:v copy -c:a aac -aac_coder twoloop -b:a 192k -map_metadata -1 -movflags +faststart -f mp4 file:V`},
			{muxArgs(m4a, "A", "C", "V"), `-stream_loop -1 -t 61.200 -f mp4 -i file:C -threads 1 -f mov -i file:A -map 0:v:0 -map 1:a:0 -c:v copy -c:a copy -map_metadata -1 -movflags +faststart -f mp4 file:V`},
		} {
			if got := strings.Join(c.got, " "); got != c.want {
				t.Errorf("options %+v:\n got %s\nwant %s", o, got, c.want)
			}
		}
	}
}

// TestCaptionsSurviveRestart leaves a captions job PROCESSING in a data directory, as a crash
// mid-render would, and starts vidgen on it: the start-up sweep keeps the captions with the job's
// other uploads, the job renders with them, and they are deleted once it has ended.
func TestCaptionsSurviveRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dirs, st, err := openData(t.Context(), dir, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	k := storeKey(t, st, "alice")
	id, _ := newJobID(time.Now(), rand.Reader)
	o := Options{Size: sizeOriginal, Background: "blur", Waveform: "none", WaveformColor: "#FFFFFF", Captions: true}
	job := Job{ID: id, KeyID: k.ID, ImageType: media.PNG, AudioType: media.WAV, AudioCodec: "pcm_s16le//2/44100",
		AudioDuration: mediaDuration(t, fixture(t, "tone.wav")), Options: o, CreatedAt: time.Now()}
	if err := st.CreateJob(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	if _, err := st.db.Exec(`UPDATE jobs SET status = 'PROCESSING' WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	copyFile(t, fixture(t, "img.png"), dirs.input(id, inputImage))
	copyFile(t, fixture(t, "tone.wav"), dirs.input(id, inputAudio))
	copyFile(t, writeFixture(t, "c.srt", []byte("1\n00:00:00,500 --> 00:00:02,000\nStill here\n")), dirs.input(id, inputCaptions))
	st.Close()

	cfg := testConfig(dir)
	e := newTestEnv(t, &cfg)
	eventually(t, renderDeadline(t), func() error {
		j, err := e.srv.store.JobByID(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status == StatusCompleted && j.Retries == 1 && j.Options.equal(o) {
			return nil
		}
		if j.Status.Final() {
			t.Fatalf("job after restart: %+v", j)
		}
		return fmt.Errorf("job after restart: %+v", j)
	})
	checkInputsGone(t, filepath.Join(dir, "inputs"))
}

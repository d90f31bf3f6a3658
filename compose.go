package main

import (
	"fmt"
	"strconv"
	"strings"
	"vidgen/internal/media"
)

// The picture a job's options ask for, as ffmpeg filter graphs: the image fitted into a platform
// size over a blurred copy of itself or a colour, and for moving pictures the waveform and the
// captions drawn over it frame by frame.

// Platform sizes are encoded at a level every platform's upload accepts: H.264 High 4.0 covers
// 1920×1080 and 1080×1920 at 30 fps (8160 macroblocks a frame, 244,800 a second, under 4.0's 8192
// and 245,760). The VBV keeps the bitrate within the level's 25 Mbit/s even on a keyframe of a
// noisy photo.
var platformVideoArgs = []string{"-profile:v", "high", "-level:v", "4.0", "-maxrate", "20M", "-bufsize", "25M"}

// blurDiv is how much the background copy is shrunk before it is blurred (and enlarged again):
// a strong blur for the cost of a small one.
const blurDiv = 16

// coverSpan bounds the enlarged copy behind the picture to coverSpan times the frame's side
// (15360×1080 in a landscape frame, 50 MB of RGB): a picture's aspect ratio may be that many times
// the frame's (a 9:16 photo in a 16:9 frame is 3.2, a 3:10 one 5.9) before the copy is cut to it,
// so the background of every photo and screenshot is made as it always was.
const coverSpan = 8

// pictureGraph is the filter graph from the image (input 0) to the job's picture, split into [v0]
// and [p]: yuv420p in BT.709 at the video's size. At the original size that is the image fitted
// to maxSide; at a platform size, the image fitted whole into the frame (enlarged when smaller) over
// its background.
func pictureGraph(job Job) string {
	fit := fmt.Sprintf("2*trunc(%%s*min(1\\,%d/max(iw\\,ih))/2)", maxSide)
	// Transparency is flattened over white; a JPEG has none, so it skips the RGBA overlay (~0.07 s
	// CPU of ~0.55 s for 1920x1080). Either way the picture goes through RGB to BT.709.
	// The white source is bounded (d=1) so that an image that yields no frame cannot keep the graph
	// producing background frames for ever.
	flatten := "format=rgba[fg];color=c=white:s=2x2:d=1,format=rgba[bg0];[bg0][fg]scale2ref[bg][fg2];" +
		"[bg][fg2]overlay=shortest=1:format=auto,"
	if job.ImageType == media.JPEG {
		flatten = "format=rgb24,"
	}
	// The pixels are square from here on (setsar=1), as browsers show a picture: they ignore the
	// aspect a JPEG's JFIF density or a PNG's pHYs gives its pixels, and the white canvas that
	// scale2ref stretches from 2×2 to the picture's size would otherwise lend it its own.
	return fmt.Sprintf("[0:v]scale=w='max(2\\,%s)':h='max(2\\,%s)':flags=lanczos,%ssetsar=1,%s"+
		"scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,split[v0][p];",
		fmt.Sprintf(fit, "iw"), fmt.Sprintf(fit, "ih"), flatten, frameFit(job.Options))
}

// frameFit is the part of pictureGraph that puts the image into a platform size's frame ("" at the
// original size). It follows a filter that ends with a comma and ends with one.
func frameFit(o Options) string {
	f, ok := platformSizes[o.Size]
	if !ok {
		return ""
	}
	// The picture fitted whole into the frame: what force_original_aspect_ratio=decrease with
	// force_divisible_by=2 computes, but never under 2 pixels, so a picture far thinner than the
	// frame (a 1×4000 strip in a landscape frame) becomes a thin strip, not a 0-pixel picture that
	// fails the render.
	fg := fmt.Sprintf("scale=w='max(2\\,2*trunc(min(%[1]d\\,round(%[2]d*iw/ih))/2))':"+
		"h='max(2\\,2*trunc(min(%[2]d\\,round(%[1]d*ih/iw))/2))':flags=lanczos[pfg];", f.W, f.H)
	over := "[pbg][pfg]overlay=x=(W-w)/2:y=(H-h)/2:format=rgb:shortest=1,"
	if o.Background != "blur" && o.Background != "" {
		// The colour's frame rate is the default 25, the image demuxers' own: the picture's frame
		// takes its duration from the colour, and a moving render's constant frame rate repeats the
		// last frame to fill it (at r=1 the video ran a second past the audio).
		return fmt.Sprintf("format=rgb24,%scolor=c=0x%s:s=%dx%d:d=1,format=rgb24[pbg];%s", fg, o.Background[1:], f.W, f.H, over)
	}
	// The background: the image enlarged to cover the frame, blurred and darkened to half its
	// brightness so the picture in front stands out. Only the frame's shape at the picture's centre
	// shows, so a picture whose aspect ratio is more than coverSpan times the frame's is first cut
	// to that: enlarged whole, a 1×4000 strip would cover a landscape frame at 1920×1843200, which
	// ffmpeg refuses (and could not hold).
	return fmt.Sprintf("format=rgb24,split[pfit][pcover];[pcover]crop=w='min(iw\\,ih*%[1]d*%[2]d/%[3]d)':h='min(ih\\,iw*%[1]d*%[3]d/%[2]d)',"+
		"scale=%[2]d:%[3]d:force_original_aspect_ratio=increase,crop=%[2]d:%[3]d,"+
		"scale=%[4]d:%[5]d:flags=bilinear,gblur=sigma=3,scale=%[2]d:%[3]d:flags=bilinear,lutrgb=r=val/2:g=val/2:b=val/2[pbg];[pfit]%[6]s%[7]s",
		coverSpan, f.W, f.H, f.W/blurDiv, f.H/blurDiv, fg, over)
}

// posterGraph turns the picture's [p] into the poster's [pj], full-range for the JPEG.
const posterGraph = "[p]scale=out_range=pc,format=yuvj420p[pj]"

// bt709Tags tag the video as the picture was converted: BT.709, limited range.
var bt709Tags = []string{"-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"}

// pictureThreads: the steps that make one picture (the still clip's, a moving picture's still)
// run their filters and encoders on one thread. ffmpeg's default is a thread per core for the filter
// graph, FFV1 and the poster's JPEG encoder, each with buffers of its own for the frame: at 1080p
// the still step took 738 MiB of address space on 2 cores and 2437 MiB on 32 (with -cpucount), 611
// MiB on one thread whatever the cores; the clip step 611 MiB and 2206 MiB, 436 MiB on one. One
// picture has nothing to share out between threads.

// stillArgs are ffmpeg's arguments for the first step of a moving picture: the image to its
// picture, one lossless frame (FFV1 in Matroska) at still, and the poster, on one thread
// (pictureThreads).
func stillArgs(job Job, image, still, poster string) []string {
	return []string{
		"-xerror", "-threads", "1", "-f", demuxer[job.ImageType], "-i", "file:" + image, // as clipArgs
		"-filter_complex_threads", "1", "-filter_complex", pictureGraph(job) + posterGraph,
		"-threads", "1", "-map", "[v0]", "-frames:v", "1", "-c:v", "ffv1", "-f", "matroska", "file:" + still,
		"-threads", "1", "-map", "[pj]", "-frames:v", "1", "-q:v", "3", "-f", "image2", "file:" + poster,
	}
}

// waveformBand is where the waveform goes in a frame of size f: its top row and its height, a
// fifth of the frame, 3% above the bottom edge (even, so the chroma of yuv420p lines up).
func waveformBand(f frameSize) (top, height int) {
	height = max(2, f.H/5&^1)
	return max(0, (f.H-height-f.H*3/100)&^1), height
}

// waveformGraph draws the audio (input 1) as [wf], an RGBA band of the frame's width: "bars" is its
// level across the last frame's time in 72 bars, mirrored about the band's middle; "line" is its
// waveform. Both are drawn at a fraction of the band's size and enlarged, which is cheaper and gives
// bars and a line thick enough to read on a phone; the square root of the level makes speech
// visible without loud music filling the band. Damaged audio is drawn timed by its samples, as
// audioArgs encodes it.
func waveformGraph(job Job, f frameSize, fps int) string {
	o := job.Options
	_, h := waveformBand(f)
	mode, w, flags := "p2p", max(2, f.W/2), "bilinear"
	if o.Waveform == "bars" {
		mode, w, flags = "cline", 72, "neighbor"
	}
	// showwaves' frames hold a whole number of samples per column, so they do not fall on the
	// video's frames: its last one (bars over 4 s of 44.1 kHz at 25 fps: 25 samples a column, the
	// last frame at 3.959 s) can start before the video's last (3.96 s), where the overlay, which
	// ends with its shorter input, ended the video a frame short. The last frame is repeated for
	// ever (tpad): the still, looped to the audio's length in frames, ends the video.
	// One scale both enlarges and converts to the frame's YUV: a second pass cost ~20% of the filters.
	in := "[1:a]"
	if parseCodecTag(job.AudioCodec).damaged() {
		in += gaplessAudio + ","
	}
	return fmt.Sprintf("%saformat=channel_layouts=mono,showwaves=s=%dx%d:mode=%s:rate=%d:colors=0x%s:draw=full:scale=sqrt,"+
		"tpad=stop=-1:stop_mode=clone,scale=%d:%d:flags=%s:out_color_matrix=bt709:out_range=tv,format=yuva420p[wf]",
		in, w, max(2, h/2), mode, fps, o.WaveformColor[1:], f.W, h, flags)
}

// movingArgs are ffmpeg's arguments for the second step of a moving picture: the still (stillArgs)
// repeated for the audio's duration, the waveform and the captions (an ASS script at ass, its font
// in fontsDir, "" for none: the captions and the title) and the progress bar drawn over it, every
// frame encoded, muxed with the audio: audio's, or the audio of the MP4 at from (an earlier size's
// video of the job, "" for none) by copy, the waveform drawn from audio either way.
func movingArgs(job Job, still, audio, from, ass, fontsDir, video string, f frameSize) []string {
	o := job.Options
	fps := o.fps()
	// The video ends within half a frame of the audio.
	frames := max(1, int(job.AudioDuration*float64(fps)+0.5))
	graph := fmt.Sprintf("[0:v]loop=loop=%d:size=1:start=0,setpts=N/%d/TB[still];", frames-1, fps)
	last := "[still]"
	if o.waveform() {
		top, _ := waveformBand(f)
		graph += waveformGraph(job, f, fps) + fmt.Sprintf(";%s[wf]overlay=x=0:y=%d:shortest=1:format=yuv420[wave];", last, top)
		last = "[wave]"
	}
	if o.ProgressBar != "" {
		graph += progressBarGraph(o, f, fps, job.AudioDuration, last, "[bar]")
		last = "[bar]"
	}
	if ass != "" {
		graph += fmt.Sprintf("%sass=filename=%s:fontsdir=%s[v]", last, filterArg(ass), filterArg(fontsDir))
	} else {
		graph += last + "null[v]"
	}
	// The still is one frame, decoded once, on one thread; the filters run every frame, on as many
	// threads as x264. ffmpeg's defaults, a thread per core for each, made a 1080p waveform with
	// captions take 1810 MiB of address space with 32 cores (-cpucount), these 1087 MiB (the
	// decoder's threads were ~300 MiB of the difference, the filters' ~17 MiB each), for the same
	// speed on 2 cores.
	args := []string{"-threads", "1", "-f", "matroska", "-i", "file:" + still}
	args = append(args, audioInput(job, audio)...)
	sound, codec := "1:a:0", audioArgs(job.AudioCodec, o)
	if from != "" {
		args = append(args, copiedAudioInput(from)...)
		sound, codec = "2:a:0", []string{"-c:a", "copy"}
	}
	args = append(args, "-filter_complex_threads", strconv.Itoa(encoderThreads()), "-filter_complex", graph,
		"-map", "[v]", "-map", sound, "-r", strconv.Itoa(fps),
		// The still clip's settings (see clipPreset): the picture is the same, and only the band
		// that moves costs more than a skipped block.
		"-threads", strconv.Itoa(encoderThreads()), "-c:v", "libx264", "-preset", clipPreset, "-crf", clipCRF, "-x264-params", clipX264Params,
		"-g", strconv.Itoa(10*fps))
	args = append(args, bt709Tags...)
	if o.platform() {
		args = append(args, platformVideoArgs...)
	}
	args = append(args, codec...)
	return append(args, "-map_metadata", "-1", "-movflags", "+faststart", "-f", "mp4", "file:"+video)
}

// filterArg quotes a value (a path) for a filter option in a -filter_complex graph: escaped once
// for the option parser and again for the graph parser, so any path under the data directory
// works, whatever characters it holds.
func filterArg(v string) string {
	v = strings.NewReplacer(`\`, `\\`, `'`, `\'`, `:`, `\:`).Replace(v)
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`, `[`, `\[`, `]`, `\]`, `,`, `\,`, `;`, `\;`).Replace(v)
}

// streamasr: microphone -> 16 kHz int16, in an AudioWorklet.
//
// Browsers open the AudioContext at the device rate (44.1 or 48 kHz; Firefox refuses a
// 16 kHz context on a 48 kHz microphone), so the worklet resamples. Box averaging or
// dropping samples aliases everything above 8 kHz into the speech band; this is a
// band-limited interpolator: each output sample is the input convolved with a
// Hann-windowed sinc low-pass (cutoff 7.2 kHz, 2 x 32 taps at the input rate) evaluated
// at the output instant. Output leaves in blocks of 1,600 samples (100 ms) as int16.
class Resampler16k extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ratio = sampleRate / 16000;             // input samples per output sample
    this.half = 32;                               // taps on each side (input samples)
    this.cutoff = 7200 / sampleRate;              // normalised to the input rate
    this.input = new Float32Array(0);             // samples not yet fully used
    this.base = 0;                                // absolute index of input[0]
    this.next = 0;                                // absolute input position of the next output
    this.block = new Int16Array(1600);
    this.fill = 0;
    this.port.onmessage = (event) => { if (event.data === "flush") this.flush(); };
  }

  kernel(x) {
    const w = 0.5 + 0.5 * Math.cos(Math.PI * x / (this.half + 1));
    const s = x === 0 ? 2 * this.cutoff : Math.sin(2 * Math.PI * this.cutoff * x) / (Math.PI * x);
    return w * s;
  }

  emit(value) {
    const clipped = Math.max(-1, Math.min(1, value));
    this.block[this.fill++] = Math.round(clipped * 32767);
    if (this.fill === this.block.length) this.send();
  }

  send() {
    if (this.fill === 0) return;
    const out = this.block.slice(0, this.fill);
    this.port.postMessage(out.buffer, [out.buffer]);
    this.fill = 0;
  }

  run(final) {
    const end = this.base + this.input.length;    // one past the last input sample
    while (final ? this.next < end : this.next + this.half + 1 < end) {
      const centre = Math.floor(this.next);
      let acc = 0;
      for (let j = centre - this.half; j <= centre + this.half + 1; j++) {
        if (j < 0 || j >= end) continue;          // zeros before the start and after the end
        acc += this.input[j - this.base] * this.kernel(this.next - j);
      }
      this.emit(acc);
      this.next += this.ratio;
    }
    const keep = Math.max(0, Math.floor(this.next) - this.half - 1 - this.base);
    if (keep > 0) { this.input = this.input.slice(keep); this.base += keep; }
  }

  flush() {
    this.run(true);
    this.send();
    this.port.postMessage("flushed");
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel && channel.length) {
      const joined = new Float32Array(this.input.length + channel.length);
      joined.set(this.input);
      joined.set(channel, this.input.length);
      this.input = joined;
      this.run(false);
    }
    return true;
  }
}

registerProcessor("resampler-16k", Resampler16k);

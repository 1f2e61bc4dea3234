#ifndef ALSA_ERRORS_H
#define ALSA_ERRORS_H
/// Replaces ALSA's default error handler (which prints to stderr) with a silent one, so that the
/// program reports device errors in its own one-line form. ALSA's handler is variadic, which Swift
/// cannot implement, hence this C target.
void emotion_monitor_silence_alsa_errors(void);
#endif

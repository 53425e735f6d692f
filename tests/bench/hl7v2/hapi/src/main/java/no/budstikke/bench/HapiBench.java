package no.budstikke.bench;

import ca.uhn.hl7v2.DefaultHapiContext;
import ca.uhn.hl7v2.HapiContext;
import ca.uhn.hl7v2.parser.PipeParser;
import ca.uhn.hl7v2.validation.impl.NoValidation;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Parses the given HL7 files with HAPI's PipeParser (no validation) for SECONDS, one thread. */
public final class HapiBench {
  public static void main(String[] args) throws Exception {
    if (args[0].equals("--check")) {  // print the files HAPI parses
      HapiContext c = new DefaultHapiContext();
      c.setValidationContext(new NoValidation());
      PipeParser p = c.getPipeParser();
      for (int i = 1; i < args.length; i++) {
        try {
          String s = new String(Files.readAllBytes(Path.of(args[i])), StandardCharsets.ISO_8859_1);
          p.parse(s.replace("\r\n", "\r").replace('\n', '\r'));
          System.out.println(args[i]);
        } catch (Exception e) {
          // not in the benchmark set
        }
      }
      return;
    }
    double seconds = Double.parseDouble(args[0]);
    List<String> msgs = new ArrayList<>();
    long bytes = 0;
    for (int i = 1; i < args.length; i++) {
      String s = new String(Files.readAllBytes(Path.of(args[i])), StandardCharsets.ISO_8859_1);
      s = s.replace("\r\n", "\r").replace('\n', '\r');
      msgs.add(s);
      bytes += s.length();
    }
    HapiContext ctx = new DefaultHapiContext();
    ctx.setValidationContext(new NoValidation());
    PipeParser parser = ctx.getPipeParser();
    // Warm-up: two seconds, so the JIT has compiled the parser before measuring.
    long warm = System.nanoTime() + 2_000_000_000L;
    while (System.nanoTime() < warm) for (String m : msgs) parser.parse(m);
    long n = 0, b = 0;
    long t0 = System.nanoTime();
    long end = t0 + (long) (seconds * 1e9);
    while (System.nanoTime() < end) {
      for (String m : msgs) {
        parser.parse(m);
        n++;
        b += m.length();
      }
    }
    double s = (System.nanoTime() - t0) / 1e9;
    System.out.printf("peer=hapi messages=%d seconds=%.3f msg_per_s=%.0f mb_per_s=%.1f%n", n, s, n / s, b / s / 1e6);
  }
}

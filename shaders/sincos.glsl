// sin and cos of a float32 angle to about one ulp, for RoPE: the built-in sin/cos are only
// specified to ~2^-11 absolute error on [-pi, pi] and are worse for the large angles of late
// positions, while the reference uses the C library's correctly reduced ones.
// Cody-Waite reduction by pi/2 in three parts (8 and 11 significant bits, so k * part is exact
// for |x| < 2^13 * pi/2, the float32 rest), then
// the Cephes minimax polynomials on [-pi/4, pi/4].
vec2 accurate_sincos(float x) {
  const float k = roundEven(x * 0.636619772367581343);
  precise float r = x - k * 1.5703125;                 // pi/2 = 201/128
  r = r - k * 4.837512969970703125e-4;                //     + 2029/2^22
  r = r - k * 7.549790126404332e-8;                  //     + the rest
  const float z = r * r;
  const float s = r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
  const float c = 1.0 - 0.5 * z +
                  z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
  const int quadrant = int(k) & 3;
  if (quadrant == 0) return vec2(s, c);
  if (quadrant == 1) return vec2(c, -s);
  if (quadrant == 2) return vec2(-s, -c);
  return vec2(-c, s);
}

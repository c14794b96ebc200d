// node check.mjs FILE.glb: the Khronos glTF validator's report and what three.js's GLTFLoader reads from the file
// (each mesh's morph target names), as one JSON object on stdout. Used by tests/test_arkit_rig.py.
import { readFileSync } from "node:fs";
import validator from "gltf-validator";
import { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";

const path = process.argv[2];
const bytes = new Uint8Array(readFileSync(path));
const report = await validator.validateBytes(bytes, { maxIssues: 100 });
const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
const gltf = await new Promise((resolve, reject) => new GLTFLoader().parse(buffer, "", resolve, reject));
const meshes = [];
gltf.scene.traverse((o) => {
  if (o.isMesh) meshes.push({ name: o.name, morphTargetDictionary: o.morphTargetDictionary ?? {},
                              influences: o.morphTargetInfluences?.length ?? 0 });
});
console.log(JSON.stringify({ validator: { numErrors: report.issues.numErrors, numWarnings: report.issues.numWarnings,
                                          messages: report.issues.messages.filter((m) => m.severity === 0) },
                             meshes }));

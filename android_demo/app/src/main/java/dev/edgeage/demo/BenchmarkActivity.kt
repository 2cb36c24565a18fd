package dev.edgeage.demo

import android.app.Activity
import android.os.Bundle
import android.util.Base64
import android.util.Log
import dev.edgeage.core.FaceCrop
import dev.edgeage.core.Json
import dev.edgeage.core.ModelSpec
import dev.edgeage.core.StageTimer
import java.io.File

/**
 * Benchmark mode: times every stage of a frame in the app's own code (crop, tensor, inference, decode) on
 * stored faces, and logs one line that `edge-age benchmark --device adb --app-stages` collects from logcat:
 *
 *     adb shell am start -W -n dev.edgeage.demo/.BenchmarkActivity --es model efficientnet_lite0_int8.tflite \
 *         --es faces /data/local/tmp/edge-age.XXXXXX/faces.json --ei runs 50 --ei threads 4 --es accelerator XNNPACK
 *
 * faces.json has the golden vectors' "faces" shape: width, height, rgb_base64 (RGB bytes), eye_left, eye_right.
 */
class BenchmarkActivity : Activity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val spec = ModelSpec.parse(assets.open("manifest.json").bufferedReader().use { it.readText() })
        val modelName = intent.getStringExtra("model") ?: spec.files.last().file
        val facesPath = intent.getStringExtra("faces")
        val runs = intent.getIntExtra("runs", 50)
        val threads = intent.getIntExtra("threads", 4)
        val accelerator = Accelerator.valueOf(intent.getStringExtra("accelerator") ?: "XNNPACK")
        Thread {
            try {
                val faces = loadFaces(File(requireNotNull(facesPath) { "--es faces PATH is required" }))
                AgeGenderModel(this, spec, spec.file(modelName), accelerator, threads).use { model ->
                    val timer = StageTimer()
                    repeat(runs) {
                        for (face in faces) {
                            timer.start("crop")
                            val crop = FaceCrop.crop(face.argb, face.width, face.height, face.eyes[0], face.eyes[1],
                                face.eyes[2], face.eyes[3], spec)
                            model.predict(crop, timer)
                            timer.endFrame()
                        }
                    }
                    Log.i(TAG, timer.report(modelName, model.accelerator.label, threads))
                }
            } catch (e: Exception) {
                Log.e(TAG, "${StageTimer.LOG_PREFIX}{\"error\": \"${e.message?.replace("\"", "'")}\"}")
            }
            finish()
        }.start()
    }

    private class Face(val width: Int, val height: Int, val argb: IntArray, val eyes: DoubleArray)

    @Suppress("UNCHECKED_CAST")
    private fun loadFaces(file: File): List<Face> {
        val parsed = Json.parse(file.readText()) as Map<String, Any>
        return (parsed["faces"] as List<Map<String, Any>>).map { face ->
            val width = (face["width"] as Number).toInt()
            val height = (face["height"] as Number).toInt()
            val rgb = Base64.decode(face["rgb_base64"] as String, Base64.DEFAULT)
            val argb = IntArray(width * height) { i ->
                (0xFF shl 24) or ((rgb[3 * i].toInt() and 0xFF) shl 16) or ((rgb[3 * i + 1].toInt() and 0xFF) shl 8) or
                    (rgb[3 * i + 2].toInt() and 0xFF)
            }
            val left = face["eye_left"] as List<Number>
            val right = face["eye_right"] as List<Number>
            Face(width, height, argb, doubleArrayOf(left[0].toDouble(), left[1].toDouble(), right[0].toDouble(),
                right[1].toDouble()))
        }
    }

    companion object {
        const val TAG = "EdgeAgeBench"
    }
}

package dev.edgeage.demo

import android.graphics.Bitmap
import android.graphics.Matrix
import android.graphics.Rect
import android.os.SystemClock
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import com.google.android.gms.tasks.Tasks
import com.google.mlkit.vision.common.InputImage
import com.google.mlkit.vision.face.FaceDetection
import com.google.mlkit.vision.face.FaceDetectorOptions
import com.google.mlkit.vision.face.FaceLandmark
import dev.edgeage.core.AgeGender
import dev.edgeage.core.FaceCrop

/** One face in a frame: its box in the upright frame and, when both eyes were found, the model's answer. */
data class FaceResult(val box: Rect, val answer: AgeGender?, val inferenceMs: Double)

/** One analysed frame, in the upright frame's pixels. */
data class FrameResult(
    val width: Int,
    val height: Int,
    val faces: List<FaceResult>,
    val detectionMs: Double,
    val modelLabel: String,
)

/**
 * Camera frame -> upright bitmap -> ML Kit faces with eye landmarks -> for each face the crop FaceCrop cuts
 * from the two eye points (the framing the model was trained on) -> the model's age and gender.
 * Runs on CameraX's analysis thread; frames arrive only as fast as this keeps up (KEEP_ONLY_LATEST).
 */
class FaceAnalyzer(
    private val currentModel: () -> AgeGenderModel?,
    private val onResult: (FrameResult) -> Unit,
) : ImageAnalysis.Analyzer {
    private val detector = FaceDetection.getClient(
        FaceDetectorOptions.Builder()
            .setPerformanceMode(FaceDetectorOptions.PERFORMANCE_MODE_FAST)
            .setLandmarkMode(FaceDetectorOptions.LANDMARK_MODE_ALL)
            .setMinFaceSize(0.1f)
            .build(),
    )

    override fun analyze(image: ImageProxy) {
        val upright = image.use { uprightBitmap(it) }
        val model = currentModel() ?: return
        val started = SystemClock.elapsedRealtimeNanos()
        val faces = Tasks.await(detector.process(InputImage.fromBitmap(upright, 0)))
        val detectionMs = (SystemClock.elapsedRealtimeNanos() - started) / 1e6
        val width = upright.width
        val height = upright.height
        val pixels = IntArray(width * height)
        upright.getPixels(pixels, 0, width, 0, 0, width, height)
        val results = faces.map { face ->
            // In an upright, unmirrored frame the person's right eye is on the frame's left.
            val frameLeftEye = face.getLandmark(FaceLandmark.RIGHT_EYE)?.position
            val frameRightEye = face.getLandmark(FaceLandmark.LEFT_EYE)?.position
            if (frameLeftEye == null || frameRightEye == null) {
                FaceResult(face.boundingBox, null, 0.0)
            } else {
                val crop = FaceCrop.crop(
                    pixels, width, height,
                    frameLeftEye.x.toDouble(), frameLeftEye.y.toDouble(),
                    frameRightEye.x.toDouble(), frameRightEye.y.toDouble(),
                    model.spec,
                )
                val inferenceStart = SystemClock.elapsedRealtimeNanos()
                val answer = model.predict(crop)
                FaceResult(face.boundingBox, answer, (SystemClock.elapsedRealtimeNanos() - inferenceStart) / 1e6)
            }
        }
        onResult(FrameResult(width, height, results, detectionMs, "${model.file.precision} · ${model.accelerator.label}"))
    }

    fun close() = detector.close()

    /** The frame as RGBA, turned so that the face is upright (what ML Kit and FaceCrop expect). */
    private fun uprightBitmap(image: ImageProxy): Bitmap {
        val bitmap = image.toBitmap()
        val rotation = image.imageInfo.rotationDegrees
        if (rotation == 0) return bitmap
        val turn = Matrix().apply { postRotate(rotation.toFloat()) }
        return Bitmap.createBitmap(bitmap, 0, 0, bitmap.width, bitmap.height, turn, false)
    }
}
